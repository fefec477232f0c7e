"""Side by side: several `selfalign eval` runs (e.g. ``--injection paper`` and ``--injection system``), per pair.

    python tools/compare_results.py paper=examples/results/X/results.json system=examples/results/Y/results.json \
        --column "paper chrF++=paper:chrf" --column "product chrF++=system:chrf" ... \
        --out examples/results/comparison

Each ``--column LABEL=RUN:STRATEGY`` is one strategy of one run. Writes ``comparison.md`` (per pair and
pooled: share of misaligned probes improved with its 95% bootstrap CI, and how many were misaligned) and
``comparison.png`` (the same as bars with CI whiskers). Reads only results.json files; no model runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cell(block: dict | None) -> str:
    if block is None or block.get("improved_pct") is None:
        return "–"
    ci = block.get("improved_ci95")
    return f"{block['improved_pct']:.1f}" + (f" ({ci[0]:.0f}–{ci[1]:.0f})" if ci else "") + f" n={block['misaligned']}"


def load(specs: list[str]) -> dict[str, dict]:
    runs = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path:
            sys.exit(f"compare_results: give runs as NAME=PATH/results.json, not {spec!r}")
        runs[name] = json.loads(Path(path).read_text(encoding="utf-8"))
    return runs


def columns(specs: list[str], runs: dict[str, dict]) -> list[tuple[str, str, str]]:
    out = []
    for spec in specs:
        label, _, ref = spec.partition("=")
        run, _, strategy = ref.partition(":")
        if run not in runs or strategy not in runs[run]["strategies"]:
            have = {r: sorted(v["strategies"]) for r, v in runs.items()}
            sys.exit(f"compare_results: no {ref!r}; runs and strategies: {have}")
        out.append((label, run, strategy))
    return out


def table(runs: dict[str, dict], cols: list[tuple[str, str, str]]) -> tuple[list[str], dict]:
    first = runs[cols[0][1]]
    pairs = [p["pair"] for p in first["pairs"]]
    data: dict[str, dict[str, dict | None]] = {}
    for pair in pairs:
        data[pair] = {}
        for label, run, strategy in cols:
            block = next((p for p in runs[run]["pairs"] if p["pair"] == pair), None)
            data[pair][label] = None if block is None else block["strategies"].get(strategy)
    data["all"] = {label: runs[run]["strategies"][strategy] for label, run, strategy in cols}
    lines = ["| pair | " + " | ".join(label for label, _, _ in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for pair, row in data.items():
        name = "**all**" if pair == "all" else pair
        lines.append(f"| {name} | " + " | ".join(_cell(row[label]) for label, _, _ in cols) + " |")
    return lines, data


def plot(data: dict, cols: list[tuple[str, str, str]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(data)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(pairs) * max(1, len(cols) / 2) + 1.5))
    height = 0.8 / len(cols)
    for i, (label, _, _) in enumerate(cols):
        ys = [len(pairs) - 1 - j + (len(cols) / 2 - i - 0.5) * height for j in range(len(pairs))]
        vals, lo, hi = [], [], []
        for pair in pairs:
            b = data[pair][label] or {}
            v = b.get("improved_pct") or 0.0
            ci = b.get("improved_ci95") or [v, v]
            vals.append(v)
            lo.append(max(0.0, v - ci[0]))
            hi.append(max(0.0, ci[1] - v))
        ax.barh(ys, vals, height=height, xerr=[lo, hi], capsize=2, label=label, error_kw={"elinewidth": 0.8})
    ax.set_yticks(range(len(pairs)))
    ax.set_yticklabels(list(reversed(["all (pooled)" if p == "all" else p for p in pairs])))
    ax.set_xlim(0, 100)
    ax.set_xlabel("misaligned probes improved (%), 95% bootstrap CI")
    ax.axvline(80, color="grey", lw=0.6, ls="--")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="NAME=PATH/results.json")
    ap.add_argument("--column", action="append", required=True, help="LABEL=RUN:STRATEGY (repeat)")
    ap.add_argument("--out", type=Path, required=True, help="folder for comparison.md and comparison.png")
    ap.add_argument("--title", default="Share of misaligned probes improved, per pair")
    args = ap.parse_args(argv)
    runs = load(args.runs)
    cols = columns(args.column, runs)
    lines, data = table(runs, cols)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(data, cols, args.out / "comparison.png", args.title)
    (args.out / "comparison.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
