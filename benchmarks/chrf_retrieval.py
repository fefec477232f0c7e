"""Benchmark: ChrfIndex vs a sacrebleu sentence_score loop for chrF++ retrieval.

Statements are the Arora et al. probe templates (read at run time from
../shared/data/arora-probes/*.csv, [MASK] filled with each answer column),
topped up to the requested size with random recombinations of the words of
one language.  Queries are probe sentences with a few words swapped, like a
chat message that paraphrases a statement.

    python3 benchmarks/chrf_retrieval.py --sizes 237,10000,100000 --queries 5
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
# CPU time of this process: everything here is single-threaded, and other jobs on a
# shared machine then do not inflate either side of the comparison.
clock = time.process_time
sys.path.insert(0, str(ROOT))

from middleware.retrieval.chrf import ChrfIndex  # noqa: E402


def load_probes(probe_dir: Path) -> dict[str, list[str]]:
    """Filled probe sentences per language file, duplicates removed."""
    by_lang: dict[str, list[str]] = {}
    for path in sorted(probe_dir.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))[1:]
        sents = []
        for row in rows:
            template = row[2]  # third column: the statement template with [MASK]
            for answer in row[3:]:
                if answer.strip():
                    sents.append(template.replace("[MASK]", answer))
        by_lang[path.stem] = list(dict.fromkeys(sents))
    if not by_lang:
        raise SystemExit(f"no probe files in {probe_dir}")
    return by_lang


def make_corpus(by_lang: dict[str, list[str]], size: int, rng: random.Random) -> list[str]:
    base = [s for sents in by_lang.values() for s in sents]
    rng.shuffle(base)
    if size <= len(base):
        return base[:size]
    words = {lang: [w for s in sents for w in s.split()] for lang, sents in by_lang.items()}
    langs = sorted(words)
    extra = []
    for _ in range(size - len(base)):
        vocab = words[rng.choice(langs)]
        extra.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 12))))
    return base + extra


def make_queries(by_lang: dict[str, list[str]], n: int, rng: random.Random) -> list[str]:
    queries = []
    langs = sorted(by_lang)
    for _ in range(n):
        lang = rng.choice(langs)
        words = rng.choice(by_lang[lang]).split()
        vocab = [w for s in by_lang[lang] for w in s.split()]
        for _ in range(2):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        queries.append(" ".join(words) + rng.choice(["", "?", "!", " :)"]))
    return queries


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="237,10000,100000")
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--oracle-max", type=int, default=10000,
                        help="score at most this many statements with sacrebleu per query; extrapolate the rest")
    parser.add_argument("--probe-dir", type=Path, default=ROOT.parent / "shared" / "data" / "arora-probes")
    parser.add_argument("--lang", help="use only this probe file (e.g. de) instead of all languages")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from sacrebleu.metrics import CHRF  # the oracle only; middleware never imports it
    oracle = CHRF(word_order=2)
    by_lang = load_probes(args.probe_dir)
    if args.lang:
        by_lang = {args.lang: by_lang[args.lang]}
    rng = random.Random(args.seed)
    queries = make_queries(by_lang, args.queries, rng)

    table = Table(title=f"chrF++ retrieval, {args.queries} queries, top_k k={args.k}")
    for col in ("statements", "sacrebleu / query", "ours scores() / query", "ours top_k / query",
                "speed-up (top_k)", "index build", "max |diff|", "oracle scored", "target met"):
        table.add_column(col, justify="right")
    notes = []
    reps_small, reps_large = 20, 5
    for size in (int(s) for s in args.sizes.split(",")):
        corpus = make_corpus(by_lang, size, random.Random(args.seed + size))
        t0 = clock()
        index = ChrfIndex(corpus)
        build = clock() - t0

        n_oracle = min(size, args.oracle_max)
        # Take the oracle subset spread over the corpus so it mixes probes and recombinations.
        subset = np.linspace(0, size - 1, n_oracle).astype(int) if n_oracle < size else np.arange(size)
        sb_time, max_diff = 0.0, 0.0
        ours_scores, ours_topk = 0.0, 0.0
        for q in queries:
            refs = [corpus[i] for i in subset]
            t0 = clock()
            ref_scores = np.array([oracle.sentence_score(q, [r]).score for r in refs])
            sb_time += (clock() - t0) * size / n_oracle
            ours = index.scores(q)
            max_diff = max(max_diff, float(np.abs(ours[subset] - ref_scores).max()))
            reps = reps_small if size <= 10000 else reps_large
            ours_scores += best_of(lambda: index.scores(q), reps)
            ours_topk += best_of(lambda: index.top_k(q, args.k), reps)
        nq = len(queries)
        sb, sc, tk = sb_time / nq, ours_scores / nq, ours_topk / nq
        if n_oracle < size:
            notes.append(f"{size}: sacrebleu timed on {n_oracle} statements and extrapolated linearly "
                         f"(x{size / n_oracle:g}); max |diff| is over those {n_oracle}.")
        target = {237: (100, None), 100000: (1000, 10.0)}.get(size)
        met = "-"
        if target:
            met = "yes" if sb / tk >= target[0] and (target[1] is None or build < target[1]) else "NO"
        table.add_row(f"{size:,}", f"{sb * 1e3:,.1f} ms", f"{sc * 1e6:,.0f} µs", f"{tk * 1e6:,.0f} µs",
                      f"{sb / tk:,.0f}x", f"{build:.2f} s", f"{max_diff:.1e}", f"{n_oracle:,}", met)

    console = Console(width=160)
    console.print(table)
    for note in notes:
        console.print(note)
    console.print("Times are CPU seconds of this process (time.process_time). "
                  f"ours: best of {reps_small} (<=10k) / {reps_large} (100k) runs per query; sacrebleu: one pass. "
                  f"Corpus: probe sentences of {', '.join(sorted(by_lang))} + same-language word recombinations.")
    console.print("targets: >= 100x at 237, >= 1000x at 100k, 100k index build < 10 s")


if __name__ == "__main__":
    main()
