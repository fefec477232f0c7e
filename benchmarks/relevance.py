"""Relevance: does selfalign inject only into messages about values, and then statements on their topic?

    PYTHONPATH=. python benchmarks/relevance.py [--split test] [--country ro] [--strategies chrf,semantic,...]

Reads benchmarks/data/relevance (labelled natural messages in 6 languages and short conversations) and
runs each message through ``SelfAligner.select`` (the decision and retrieval a request gets: the proxy,
align(), wrap_openai, the callback and the chat all call it). Per language and overall:

- ``through``: share of neutral and borderline messages that get any statement (target <= 5%);
- ``value in``: share of value messages the decision lets through (whatever they then get);
- ``on-topic >=1``: share of value messages that get at least one statement whose probe is labelled on
  topic (target >= 95%);
- ``on-topic share``: share of all injected statements (value messages) that are on topic (>= 80%);
- ``embedded``: share of messages whose relevance decision embedded them (the default gate's uncertain
  band; every message for the semantic strategies);
- ``p50``/``p99``: added work per message in ms, the decision and retrieval together (<= 3 / <= 10 ms);
- ``over 10 ms``: share of messages whose added work passed 10 ms (an embedding: the gate's band, or
  retrieval in a language without probes). Near 50% the p50 lands on either side of a two-peaked
  distribution, so this share says more than the p50.

One table per configuration, side by side: ``always`` is the behaviour before the decision
(min_relevance=0, chrF++, k=5); the others use the default gate and floor with each ranking.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.columns import Columns  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from middleware.options import DEFAULT_MIN_RELEVANCE  # noqa: E402
from middleware.retrieval.aligner import SelfAligner  # noqa: E402
from middleware.retrieval.relevance import RelevanceModel  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "relevance"
LANGS = ("en", "ro", "de", "tr", "fr", "es")
CONFIGS = {"always": ("chrf", 0.0), "chrf": ("chrf", None), "semantic": ("semantic", None),
           "hybrid": ("hybrid", None)}


def load(split: str) -> list[dict]:
    rows = []
    for lang in LANGS:
        path = DATA / f"{lang}.jsonl"
        if path.exists():
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    conv = DATA / "conversations.jsonl"
    if conv.exists():
        for line in conv.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append({**row, "lang": "conv"})
    return [r for r in rows if r["split"] == split]


_gate_embeddings = [0]


def _count_gate_embeddings() -> None:
    """Count the messages the gate embeds (the two-stage gate's uncertain band, or every one for semantic)."""
    original = RelevanceModel.semantic_score

    def counted(self, text):
        _gate_embeddings[0] += 1
        return original(self, text)

    RelevanceModel.semantic_score = counted


def measure(aligner: SelfAligner, rows: list[dict], progress: Progress, name: str) -> dict[str, dict]:
    """Per language: counts and per-message timings."""
    from middleware.retrieval import semantic

    per: dict[str, dict] = {}
    # Steady state, as in a running server: every language's profile and chrF++ index built before timing
    # (building one takes 30-50 ms once, which would otherwise land on the first message of each language).
    aligner.select("warm-up: is religion important?")
    for lang in sorted({r["lang"] for r in rows}):
        aligner.select(_messages(next(r for r in rows if r["lang"] == lang)))
    task = progress.add_task(name, total=len(rows))
    for r in rows:
        if semantic.available():
            semantic._embed_query.cache_clear()  # each configuration embeds every message afresh
        messages = _messages(r)
        before = _gate_embeddings[0]
        started = time.perf_counter()
        got = aligner.select(messages)
        took = (time.perf_counter() - started) * 1000
        for key in (r["lang"], "all"):
            s = per.setdefault(key, {"other": 0, "through": 0, "value": 0, "passed": 0, "hit": 0, "injected": 0,
                                     "on_topic": 0, "embedded": 0, "ms": []})
            s["ms"].append(took)
            s["embedded"] += _gate_embeddings[0] > before
            if r["kind"] == "value":
                s["value"] += 1
                s["passed"] += got.relevance.inject
                on = sum(d.probe_id in r["probes"] for d in got)
                s["hit"] += on > 0
                s["injected"] += len(got)
                s["on_topic"] += on
            else:
                s["other"] += 1
                s["through"] += len(got) > 0
        progress.advance(task)
    return per


def _messages(row: dict) -> list[dict]:
    """What a labelled row sends: its conversation, or its message as the one user turn."""
    return row["messages"] if "messages" in row else [{"role": "user", "content": row["text"]}]


def _latency(ms: list[float]) -> dict[str, float]:
    """Added work per message: p50, p99 and the share over 10 ms (the table and the JSON print these)."""
    a = np.array(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "over_10ms": float((a > 10).mean())}


def _pct(a: int, b: int) -> str:
    return f"{a / b:.0%}" if b else "–"


def table(name: str, per: dict[str, dict], title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("lang", "through", "value in", "on-topic >=1", "on-topic share", "embedded", "p50 ms", "p99 ms", "over 10 ms"):
        t.add_column(col, justify="left" if col == "lang" else "right")
    for lang in [*LANGS, "conv", "all"]:
        s = per.get(lang)
        if s is None:
            continue
        lat = _latency(s["ms"])
        t.add_row(lang, _pct(s["through"], s["other"]), _pct(s["passed"], s["value"]), _pct(s["hit"], s["value"]),
                  _pct(s["on_topic"], s["injected"]), _pct(s["embedded"], s["value"] + s["other"]),
                  f"{lat['p50_ms']:.2f}", f"{lat['p99_ms']:.2f}", f"{lat['over_10ms']:.0%}",
                  style="bold" if lang == "all" else None)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test", choices=("dev", "test"))
    ap.add_argument("--country", default="ro")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--min-relevance", type=float, default=DEFAULT_MIN_RELEVANCE)
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"among {', '.join(CONFIGS)}")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    rows = load(args.split)
    _count_gate_embeddings()
    console = Console(width=None if sys.stdout.isatty() else 240)  # four tables side by side in a log too
    results = {}
    with Progress(console=console, transient=True) as progress:
        for name in args.configs.split(","):
            strategy, threshold = CONFIGS[name]
            aligner = SelfAligner(country=args.country, k=args.k, strategy=strategy,
                                  min_relevance=args.min_relevance if threshold is None else threshold)
            results[name] = measure(aligner, rows, progress, name)
    tables = [table(name, per, f"{name} ({'min_relevance 0' if CONFIGS[name][1] == 0 else 'gate ' + str(args.min_relevance)})")
              for name, per in results.items()]
    console.print(f"split {args.split}: {len(rows)} messages, country {args.country}, k <= {args.k}")
    console.print(Columns(tables))
    if args.json:
        out = {name: {lang: {k: v for k, v in s.items() if k != "ms"} | _latency(s["ms"])
                      for lang, s in per.items()} for name, per in results.items()}
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
