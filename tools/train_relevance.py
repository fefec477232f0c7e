"""Train the relevance gate (middleware/retrieval/relevance.npz): is a message about values?

    python tools/train_relevance.py            # writes middleware/retrieval/relevance.npz, prints figures

A logistic regression over hashed character 1-5-grams (middleware.retrieval.relevance.hashed_features),
fitted with L-BFGS on:

- the dev split of benchmarks/data/relevance (value messages: 1; neutral and borderline: 0), and the
  dev conversations judged as the aligner judges them (a follow-up with its earlier user turns);
- every probe template of the 14 probe languages, filled with each option (1): the statements themselves;
- tools/data/relevance_extra.jsonl (the hashed model only): short neutral requests and value questions written for this in the
  probe languages the labelled set lacks, and neutral ones in a few other languages (so no language is
  "about values" merely by being one the probes are in).

The semantic strategies' gate, a logistic regression over the message's e5 embedding (which they
compute anyway), is fitted on the dev messages alone and saved in the same file.

The default gate is two-stage: the n-gram score decides below ``band_low`` (not values) and at or above
``band_high`` (values); only messages in between are embedded and judged by the e5 gate. The band is
chosen by the same cross-validation: the one that embeds the fewest dev messages while keeping within
1 point of the embedding gate's value messages kept and letting through no more neutral/borderline
messages than it does (or 5%, whichever is more).

Only split=dev is read. Before the final fit, 5-fold cross-validation over the labelled dev messages
prints, per threshold, the share of neutral/borderline messages let through and of value messages
kept, which is how the default ``min_relevance`` was chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from middleware.data.probes import available_languages, load_probes  # noqa: E402
from middleware.retrieval.relevance import MODEL_PATH, conversation_query, hashed_features  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "relevance"
EXTRA = ROOT / "tools" / "data" / "relevance_extra.jsonl"
BITS = 18
L2 = 1e-5
BORDERLINE_WEIGHT = 2.0  # value words without a value question: the hard negatives
PROBE_WEIGHT = 0.02  # 6,900 probe statements: enough to know the topics, not to outweigh real messages
THRESHOLDS = (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
SEMANTIC_SCALE = 10.0  # e5 embeddings are unit vectors: scaled so the weights stay near 1
SEMANTIC_L2 = 1e-3
TARGET_THROUGH = 0.05  # neutral and borderline messages that may get statements
GATE_THRESHOLD = 0.8  # the default min_relevance the two-stage band is chosen for
BAND_LOWS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
BAND_HIGHS = (0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
BAND_SLACK = 0.01  # the two-stage gate may keep up to 1 point fewer value messages than the embedding gate


def labelled(split: str = "dev") -> list[tuple[str, int, float, str]]:
    """(text, label, weight, group) of the labelled messages and conversations of ``split``."""
    out = []
    for path in sorted(DATA.glob("*.jsonl")):  # the language files and conversations.jsonl
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("split") != split:
                continue
            text = conversation_query(row["messages"]) if "messages" in row else row["text"]
            weight = BORDERLINE_WEIGHT if row["kind"] == "borderline" else 1.0
            out.append((text, int(row["kind"] == "value"), weight, row["kind"]))
    return out


def background() -> list[tuple[str, int, float, str]]:
    """The probe statements (both options) and the extra written messages."""
    out = []
    for lang in available_languages():
        for p in load_probes(lang):
            for option in (0, 1):
                out.append((p.fill(option), 1, PROBE_WEIGHT, "probe"))
    for line in EXTRA.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append((row["text"], int(row["kind"] == "value"), 1.0, row["kind"]))
    return out


def matrix(texts: list[str]) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for i, t in enumerate(texts):
        ids, w = hashed_features(t, BITS)
        rows.append(np.full(len(ids), i)), cols.append(ids), vals.append(w)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(len(texts), 1 << BITS))


def fit(x: sp.csr_matrix, y: np.ndarray, w: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float]:
    # Balance the classes so the prior does not decide borderline cases.
    pos = w[y == 1].sum()
    neg = w[y == 0].sum()
    w = np.where(y == 1, w / pos, w / neg) * len(y) / 2

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, bias = theta[:-1], theta[-1]
        z = x @ coef + bias
        p = 1 / (1 + np.exp(-z))
        nll = np.sum(w * (np.logaddexp(0, z) - y * z)) / len(y)
        g = w * (p - y) / len(y)
        grad = np.concatenate([x.T @ g + l2 * coef, [g.sum()]])
        return nll + 0.5 * l2 * coef @ coef, grad

    res = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:-1], float(res.x[-1])


def predict(x: sp.csr_matrix, coef: np.ndarray, bias: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(x @ coef + bias)))


def fit_semantic(texts: list[str], y: np.ndarray, w: np.ndarray, embeddings: np.ndarray | None = None
                 ) -> tuple[np.ndarray, float]:
    """The gate of the semantic strategies: a logistic regression over the message's e5 embedding (the one
    semantic retrieval computes anyway). ``embeddings`` (one row per text) saves embedding them again."""
    if embeddings is None:
        from middleware.retrieval.semantic import embed_query

        embeddings = np.stack([embed_query(t) for t in texts])
    return fit(sp.csr_matrix(embeddings * SEMANTIC_SCALE), y, w, l2=SEMANTIC_L2)


def choose_band(cv: np.ndarray, cv_sem: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """The two-stage band (low, high) over the n-gram score, from the cross-validated scores of both gates
    at :data:`GATE_THRESHOLD`; prints every band's figures."""
    t = GATE_THRESHOLD
    sem_through, sem_kept = (cv_sem[y == 0] >= t).mean(), (cv_sem[y == 1] >= t).mean()
    print(f"two-stage gate at {t}: n-gram below low: no, at/above high: yes, in between: the e5 gate")
    print("  low  high  embedded  neutral+borderline through  borderline through  value kept")
    best = None
    for low in BAND_LOWS:
        for high in BAND_HIGHS:
            band = (cv >= low) & (cv < high)
            decide = np.where(band, cv_sem >= t, cv >= high)
            through, kept = decide[y == 0].mean(), decide[y == 1].mean()
            print(f"{low:5.2f}  {high:4.2f}  {band.mean():8.1%}  {through:26.1%}"
                  f"  {decide[groups == 'borderline'].mean():18.1%}  {kept:10.1%}")
            if kept >= sem_kept - BAND_SLACK and through <= max(sem_through, TARGET_THROUGH):
                if best is None or band.mean() < best[0]:
                    best = (band.mean(), low, high)
    if best is None:
        raise SystemExit("no band keeps the embedding gate's figures: widen BAND_LOWS/BAND_HIGHS")
    print(f"chosen band: [{best[1]}, {best[2]}), embedding {best[0]:.1%} of dev messages "
          f"(the embedding gate alone: {sem_through:.1%} through, {sem_kept:.1%} kept)")
    return best[1], best[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--embeddings", type=Path, help="e5 embeddings of the dev messages in order (.npy), "
                    "instead of embedding them (minutes on 2 cores)")
    args = ap.parse_args()
    dev, bg = labelled("dev"), background()
    print(f"dev messages: {len(dev)} ({sum(r[1] for r in dev)} value); background: {len(bg)}")
    x_dev, x_bg = matrix([r[0] for r in dev]), matrix([r[0] for r in bg])
    y_dev = np.array([r[1] for r in dev], float)
    y_bg = np.array([r[1] for r in bg], float)
    w_dev = np.array([r[2] for r in dev])
    w_bg = np.array([r[2] for r in bg])
    groups = np.array([r[3] for r in dev])

    rng = np.random.default_rng(0)
    fold = rng.permutation(len(dev)) % args.folds
    cv = np.zeros(len(dev))
    for f in range(args.folds):
        train = fold != f
        coef, bias = fit(sp.vstack([x_dev[train], x_bg]), np.concatenate([y_dev[train], y_bg]),
                         np.concatenate([w_dev[train], w_bg]))
        cv[~train] = predict(x_dev[~train], coef, bias)
    print(f"{args.folds}-fold cross-validation on the dev split:")
    print("threshold  neutral+borderline through  borderline through  value kept")
    chosen = None
    for t in THRESHOLDS:
        through = cv[y_dev == 0] >= t
        border = cv[groups == "borderline"] >= t
        kept = cv[y_dev == 1] >= t
        print(f"{t:9.2f}  {through.mean():26.1%}  {border.mean():18.1%}  {kept.mean():10.1%}")
        if chosen is None and through.mean() <= TARGET_THROUGH:
            chosen = t
    print(f"lowest threshold letting through at most {TARGET_THROUGH:.0%} of neutral/borderline: {chosen}")

    coef, bias = fit(sp.vstack([x_dev, x_bg]), np.concatenate([y_dev, y_bg]), np.concatenate([w_dev, w_bg]))
    if args.embeddings is not None:
        emb = np.load(args.embeddings)
    else:
        from middleware.retrieval.semantic import embed_query

        emb = np.stack([embed_query(r[0]) for r in dev])
    cv_sem = np.zeros(len(dev))
    for f in range(args.folds):
        train = fold != f
        c, b = fit_semantic([], y_dev[train], w_dev[train], emb[train])
        cv_sem[~train] = 1 / (1 + np.exp(-(emb[~train] @ (c * SEMANTIC_SCALE) + b)))
    print("the semantic strategies' gate (e5 embedding), same cross-validation:")
    for t in THRESHOLDS:
        print(f"{t:9.2f}  {(cv_sem[y_dev == 0] >= t).mean():26.1%}  {(cv_sem[groups == 'borderline'] >= t).mean():18.1%}"
              f"  {(cv_sem[y_dev == 1] >= t).mean():10.1%}")
    low, high = choose_band(cv, cv_sem, y_dev, groups)
    sem_coef, sem_bias = fit_semantic([], y_dev, w_dev, emb)
    np.savez_compressed(args.out, weights=coef.astype(np.float16), bias=np.float32(bias), bits=np.int32(BITS),
                        semantic_weights=(sem_coef * SEMANTIC_SCALE).astype(np.float32),
                        semantic_bias=np.float32(sem_bias), band_low=np.float32(low), band_high=np.float32(high))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB), {np.count_nonzero(coef)} non-zero weights")


if __name__ == "__main__":
    main()
