"""What a run leaves behind: terminal tables, results.json, probes.csv, the paper's figures and report.md.

Every file is written to a temporary sibling and renamed into place, so an interrupted run
never leaves a half-written result next to complete ones.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .._files import write_atomic
from .records import EvalRun

__all__ = ["print_tables", "write_outputs", "probe_rows", "FIGURES", "PAPER_IMPROVED_RANGE"]

# Choenni & Shutova (2024): alignment improved for 49-76% of the misaligned probes across 5 models and 14 languages.
PAPER_IMPROVED_RANGE = (49, 76)

FIGURES = {
    "fig2_outcomes.png": "Figure 2: misaligned probes improved / unchanged / worsened, per pair and strategy",
    "fig3_error_reduction.png": "Figure 3: error-rate reduction (Eq. 1) of the improved probes",
    "fig7_misalignment.png": "Figure 7: initial (zero-shot) misalignment per language",
    "fig8_categories.png": "Figure 8: improved misaligned probes per WVS category",
    "distributional.png": "Beyond the paper: distributional alignment (1 - JSD) before and after",
    "orders.png": "Order robustness: share improved for each reshuffle of the demonstrations",
}

_COLORS = {"improved": "#2e7d32", "unchanged": "#9e9e9e", "worsened": "#c62828"}


def _f(value: Any, fmt: str = "{:.1f}", none: str = "–") -> str:
    return none if value is None else fmt.format(value)


# --------------------------------------------------------------------------- terminal


def print_tables(results: dict, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from rich.markup import escape

    console = console or Console()
    cfg = results["config"]
    mis_rule = cfg["misaligned_rule"]
    table = Table(title=f"Self-alignment on {cfg['model']} ({_setting(cfg)})", caption=f"misaligned: {mis_rule}; "
                  f"improved/worsened: change in p(majority) beyond ±{cfg['tolerance']}", pad_edge=False)
    for col, just in [("pair", "left"), ("strategy", "left"), ("n", "right"), ("misaligned", "right"),
                      ("improved % [95% CI]", "right"), ("same %", "right"), ("worse %", "right"),
                      ("mean ER", "right"), ("1-JSD", "right")]:
        table.add_column(col, justify=just)

    def add(label: str, zero: dict, s: str, b: dict) -> None:
        ci = b["improved_ci95"]
        d = b["distributional"]
        er = b["error_reduction"]["mean"]
        table.add_row(label, s, str(b["probes"]), f"{b['misaligned']} ({_f(zero['misaligned_pct'], '{:.0f}')}%)",
                      _f(b["improved_pct"]) + ("" if ci is None else f" [{ci[0]:.0f}–{ci[1]:.0f}]"),
                      _f(b["unchanged_pct"]), _f(b["worsened_pct"]), _f(er if er is None else 100 * er, "{:.0f}%"),
                      f"{_f(d['before'], '{:.2f}')}→{_f(d['after'], '{:.2f}')}" if d["n"] else "–")

    for pair in results["pairs"]:
        for s, b in pair["strategies"].items():
            add(pair["pair"], pair["zero_shot"], s, b)
    if len(results["pairs"]) > 1:
        for s, b in results["strategies"].items():
            add("all", results["zero_shot"], s, b)
    console.print(table)
    for s, b in results["strategies"].items():
        if "orders" in b:
            o = b["orders"]
            span = f"{_f(o['improved_pct_min'])}–{_f(o['improved_pct_max'])}%"
            console.print(escape(f"order robustness [{s}]: improved {span} over {o['orders']} orders; verdict stable "
                                 f"for {_f(o['verdict_stable_pct'])}% of misaligned probes; mean sd of p(majority) "
                                 f"{_f(o['mean_p_std'], '{:.3f}')}"))
    run = results["run"]
    console.print(f"{run['requests']} distinct prompts, {run['cached']} from the cache, {run['model_calls']} model "
                  f"calls, {run['seconds']:.1f} s")


# --------------------------------------------------------------------------- files


CSV_FIELDS = ["pair", "language", "country", "probe_id", "wvs_id", "category", "condition", "strategy", "order",
              "option_1", "option_2", "shown_first", "majority", "p_option_1", "p_option_2", "p_majority",
              "p_majority_zero_shot", "n_option_1", "n_option_2", "n_invalid", "survey_share_1", "survey_share_2",
              "distributional_alignment", "misaligned", "verdict", "error_reduction", "demonstrations"]


def probe_rows(run: EvalRun) -> list[dict]:
    out = []
    for r in run.rows:
        out.append({
            "pair": r.pair, "language": r.language, "country": r.country, "probe_id": r.probe_id,
            "wvs_id": r.wvs_id, "category": r.category, "condition": r.condition, "strategy": r.strategy or "",
            "order": r.order, "option_1": r.options[0], "option_2": r.options[1], "shown_first": r.option_order[0] + 1,
            "majority": r.majority + 1,
            "p_option_1": _f(r.dist and r.dist[0], "{:.6f}", ""),
            "p_option_2": _f(r.dist and r.dist[1], "{:.6f}", ""),
            "p_majority": _f(r.p, "{:.6f}", ""), "p_majority_zero_shot": _f(r.p_before, "{:.6f}", ""),
            "n_option_1": "" if r.counts is None else r.counts[0],
            "n_option_2": "" if r.counts is None else r.counts[1],
            "n_invalid": "" if r.counts is None else r.counts[2],
            "survey_share_1": _f(r.shares and r.shares[0], "{:.6f}", ""),
            "survey_share_2": _f(r.shares and r.shares[1], "{:.6f}", ""),
            "distributional_alignment": _f(r.alignment, "{:.6f}", ""), "misaligned": int(r.misaligned),
            "verdict": r.verdict or "", "error_reduction": _f(r.error_reduction, "{:.6f}", ""),
            "demonstrations": " ".join(r.demo_ids)})
    return out


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _json_default(o: Any) -> Any:
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o))


def write_outputs(run: EvalRun, out: Path) -> list[Path]:
    """results.json, probes.csv, the figures and report.md under ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    path = out / "results.json"
    write_atomic(path, json.dumps(run.results, indent=2, ensure_ascii=False, default=_json_default) + "\n")
    written.append(path)
    path = out / "probes.csv"
    write_atomic(path, _csv(probe_rows(run)))
    written.append(path)
    figures = plot_all(run.results, out)
    written += figures
    path = out / "report.md"
    write_atomic(path, render_report(run.results, [p.name for p in figures]))
    written.append(path)
    return written


# --------------------------------------------------------------------------- figures


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    write_atomic(path, buf.getvalue())
    return path


def plot_all(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    strategies = list(results["strategies"])
    pairs = results["pairs"]

    # Figure 2: stacked outcome shares per pair x strategy.
    labels, shares, empty = [], [], []
    for pair in pairs:
        for s in strategies:
            b = pair["strategies"][s]
            labels.append(f"{pair['pair']} · {s}")
            shares.append([b[k + "_pct"] or 0.0 for k in ("improved", "unchanged", "worsened")])
            empty.append(b["improved_pct"] is None)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.5))
    left = [0.0] * len(labels)
    for i, k in enumerate(("improved", "unchanged", "worsened")):
        vals = [s[i] for s in shares]
        ax.barh(labels, vals, left=left, color=_COLORS[k], label=k)
        left = [a + b for a, b in zip(left, vals)]
    for y, none in enumerate(empty):
        if none:
            ax.text(1, y, "no misaligned probe with a verdict", va="center", fontsize=8, color="#616161")
    lo, hi = PAPER_IMPROVED_RANGE
    ax.axvspan(lo, hi, color="#1565c0", alpha=0.08, label=f"paper: improved {lo}–{hi}%")
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of misaligned probes")
    ax.set_title(f"Outcome of self-alignment — {results['config']['model']} ({_setting(results['config'])})")
    # Below the x label: about 0.6 inch under the axes, whatever the figure's height.
    axes_inches = fig.get_figheight() * (fig.subplotpars.top - fig.subplotpars.bottom)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / axes_inches), ncol=4, fontsize=8, frameon=False)
    paths.append(_save(fig, out / "fig2_outcomes.png"))

    # Figure 3: histogram of error-rate reduction over improved probes.
    edges = [100 * e for e in results["strategies"][strategies[0]]["error_reduction"]["histogram"]["edges"]]
    fig, axes = plt.subplots(1, len(strategies), figsize=(3.2 * len(strategies), 2.8), squeeze=False, sharey=True)
    for ax, s in zip(axes[0], strategies):
        er = results["strategies"][s]["error_reduction"]
        ax.bar(edges[:-1], er["histogram"]["counts"], width=10, align="edge", color="#2e7d32", edgecolor="white")
        ax.set_title(f"{s} (n={er['n']}, mean {_f(er['mean'] and 100 * er['mean'], '{:.0f}')}%)", fontsize=9)
        ax.set_xlabel("error-rate reduction (%)")
        ax.set_xlim(0, 100)
    axes[0][0].set_ylabel("improved probes")
    fig.suptitle(f"Error-rate reduction ({_setting(results['config'])})", fontsize=10)
    paths.append(_save(fig, out / "fig3_error_reduction.png"))

    # Figure 7: zero-shot misalignment per language/country pair.
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(pairs) + 2), 3))
    vals = [p["zero_shot"]["misaligned_pct"] or 0.0 for p in pairs]
    bars = ax.bar([p["pair"] for p in pairs], vals, color="#ef6c00")
    for bar, p in zip(bars, pairs):
        ax.annotate(f"{p['zero_shot']['misaligned']}/{p['zero_shot']['answered']}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% misaligned probes (zero-shot)")
    ax.set_title(f"Initial misalignment ({results['config']['misaligned_rule']}; "
                 f"{_setting(results['config'])})", fontsize=9)
    paths.append(_save(fig, out / "fig7_misalignment.png"))

    # Figure 8: improved share per WVS category, one bar per strategy.
    cats = sorted({c for s in strategies for c in results["strategies"][s]["categories"]})
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(cats) * max(1, len(strategies) / 2) + 1.5))
    height = 0.8 / max(1, len(strategies))
    for j, s in enumerate(strategies):
        cs = results["strategies"][s]["categories"]
        ys = [i + j * height for i in range(len(cats))]
        ax.barh(ys, [(cs.get(c) or {}).get("improved_pct") or 0.0 for c in cats], height=height, label=s)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(cats))])
    ax.set_yticklabels([f"{c} ({results['strategies'][strategies[0]]['categories'].get(c, {}).get('misaligned', 0)})"
                        for c in cats], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of misaligned probes improved (misaligned count in brackets)")
    ax.legend(fontsize=8)
    ax.set_title(f"Improvements per WVS category ({_setting(results['config'])})")
    paths.append(_save(fig, out / "fig8_categories.png"))

    # Beyond the paper: distributional alignment before/after.
    rows = [(p["pair"], s, p["strategies"][s]["distributional"]) for p in pairs for s in strategies]
    rows = [r for r in rows if r[2]["n"]]
    if rows:
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
        ys = list(range(len(rows)))
        ax.scatter([r[2]["before"] for r in rows], ys, color="#9e9e9e", label="zero-shot", zorder=3)
        ax.scatter([r[2]["after"] for r in rows], ys, color="#1565c0", label="aligned", zorder=3)
        for y, r in zip(ys, rows):
            ax.plot([r[2]["before"], r[2]["after"]], [y, y], color="#bdbdbd", zorder=1)
        ax.set_yticks(ys)
        ax.set_yticklabels([f"{a} · {s} (n={d['n']})" for a, s, d in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("mean 1 − Jensen–Shannon distance to the survey shares")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / "distributional.png"))

    # Order robustness.
    with_orders = [s for s in strategies if "orders" in results["strategies"][s]]
    if with_orders:
        fig, ax = plt.subplots(figsize=(6, 3))
        for j, s in enumerate(with_orders):
            o = results["strategies"][s]["orders"]["improved_pct"]
            ax.scatter([j] * len(o), [v or 0.0 for v in o.values()], label=s)
        ax.set_xticks(range(len(with_orders)))
        ax.set_xticklabels(with_orders)
        ax.set_ylim(0, 100)
        ax.set_ylabel("% misaligned improved")
        ax.set_title("One point per order of the demonstrations (order 0: as retrieved)", fontsize=9)
        paths.append(_save(fig, out / "orders.png"))
    return paths


# --------------------------------------------------------------------------- report.md


def _setting(cfg: dict) -> str:
    """Mode and injection, for titles: "exact mode, system injection"."""
    return f"{cfg['mode']} mode, {cfg.get('injection', 'paper')} injection"


def _injection(cfg: dict) -> str:
    if cfg.get("injection", "paper") == "paper":
        text = "paper injection (demonstrations as solved items in the user prompt)"
    else:
        text = ("system injection (the product's request: the probe as the user message through "
                f"SelfAligner.align, format {', '.join(cfg.get('formats') or ['bullets'])})")
    return text + (", minority control" if cfg.get("minority_control") else "")


def render_report(results: dict, figures: list[str]) -> str:
    cfg = results["config"]
    run = results["run"]
    lines = [
        "# Self-alignment evaluation",
        "",
        f"Model `{cfg['model']}`" + (f" at `{cfg['api_base']}`" if cfg.get("api_base") else "")
        + f", {cfg['mode']} mode" + (f" ({cfg['samples']} samples per prompt)" if cfg["mode"] == "sample" else "")
        + f", {_injection(cfg)}"
        + f", probes `{cfg['probes']}`" + (f" (a seeded random {cfg['sample']} per pair)" if cfg.get("sample") else "")
        + (f" (first {cfg['limit']} per pair)" if cfg["limit"] else "")
        + f", k = {cfg['k']} demonstrations, seed {cfg['seed']}.",
        "",
        f"* Misaligned (zero-shot): {cfg['misaligned_rule']}.",
        f"* Improved / worsened: p(majority) rises / falls by more than {cfg['tolerance']} with the demonstrations; "
        "otherwise unchanged.",
        "* Error-rate reduction (Eq. 1): ER = (err_before − err_after) / err_before with err = 1 − p(majority), "
        "over improved misaligned probes; err_after = 0 gives 100%.",
        "* Distributional alignment: 1 − Jensen–Shannon distance (base 2) between the model's two-option "
        "distribution and the country's WVS shares (answers with shares only).",
        f"* {run['requests']} distinct prompts, {run['model_calls']} model calls, {run['cached']} from the cache, "
        f"{run['seconds']:.0f} s.",
        *[f"* Signature, {what}: `{sig}`" for what, sig in results.get("signatures", {}).items()],
        "",
        "## Table 1: outcome on the misaligned probes",
        "",
        "| pair | strategy | probes | misaligned | improved % (95% CI) | unchanged % | worsened % | mean ER | "
        "1−JSD before → after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def row(label: str, zero: dict, s: str, b: dict) -> str:
        ci = b["improved_ci95"]
        d = b["distributional"]
        er = b["error_reduction"]["mean"]
        return (f"| {label} | {s} | {b['probes']} | {b['misaligned']} ({_f(zero['misaligned_pct'], '{:.0f}')}%) | "
                f"{_f(b['improved_pct'])}" + ("" if ci is None else f" ({ci[0]:.0f}–{ci[1]:.0f})")
                + f" | {_f(b['unchanged_pct'])} | {_f(b['worsened_pct'])} | {_f(er and 100 * er, '{:.0f}%')} | "
                + (f"{d['before']:.3f} → {d['after']:.3f} (n={d['n']})" if d["n"] else "–") + " |")

    for pair in results["pairs"]:
        for s, b in pair["strategies"].items():
            lines.append(row(pair["pair"], pair["zero_shot"], s, b))
    if len(results["pairs"]) > 1:
        for s, b in results["strategies"].items():
            lines.append(row("**all**", results["zero_shot"], s, b))
    lo, hi = PAPER_IMPROVED_RANGE
    lines += ["", f"Paper (Choenni & Shutova 2024): improved for {lo}–{hi}% of the misaligned probes across 5 models "
              "and 14 languages.", ""]
    if cfg.get("injection") == "system":
        # The product's gate and floor decide how many statements a probe gets: say so beside the outcomes.
        given = [f"{s} {b['mean_demonstrations']:.1f} ({b['without_demonstrations']} of {b['probes']} probes got none)"
                 for s, b in results["strategies"].items()
                 if (b.get("mean_demonstrations") or 0) > 0]
        if given:
            lines += ["Demonstrations per probe, as the product's relevance decision and floor gave them "
                      f"(min_relevance {cfg['min_relevance']:g}): " + "; ".join(given) + ".", ""]

    with_orders = {s: b["orders"] for s, b in results["strategies"].items() if "orders" in b}
    if with_orders:
        lines += ["## Order robustness", "",
                  "| strategy | orders | improved % min–max | verdict stable % | mean sd of p(majority) |",
                  "|---|---:|---:|---:|---:|"]
        for s, o in with_orders.items():
            lines.append(f"| {s} | {o['orders']} | {_f(o['improved_pct_min'])}–{_f(o['improved_pct_max'])} | "
                         f"{_f(o['verdict_stable_pct'])} | {_f(o['mean_p_std'], '{:.3f}')} |")
        lines.append("")

    lines += ["## Initial misalignment per pair (Figure 7)", "", "| pair | answered | misaligned | mean p(majority) |"
              + (" invalid answers |" if cfg["mode"] == "sample" else ""),
              "|---|---:|---:|---:|" + ("---:|" if cfg["mode"] == "sample" else "")]
    for p in results["pairs"]:
        z = p["zero_shot"]
        lines.append(f"| {p['pair']} | {z['answered']} | {z['misaligned']} ({_f(z['misaligned_pct'], '{:.0f}')}%) | "
                     f"{_f(z['mean_p_majority'], '{:.3f}')} |"
                     + (f" {_f(z['invalid_rate'] and 100 * z['invalid_rate'], '{:.0f}%')} |"
                        if cfg["mode"] == "sample" else ""))
    lines.append("")

    first = next(iter(results["strategies"]))
    cats = results["strategies"][first]["categories"]
    lines += ["## Improvements per WVS category (Figure 8, all pairs)", "",
              "| category | misaligned | " + " | ".join(f"{s} improved %" for s in results["strategies"]) + " |",
              "|---|---:|" + "---:|" * len(results["strategies"])]
    for c, v in cats.items():
        lines.append(f"| {c} | {v['misaligned']} | " + " | ".join(
            _f(results["strategies"][s]["categories"].get(c, {}).get("improved_pct")) for s in results["strategies"])
            + " |")
    lines.append("")

    lines += ["## Figures", ""]
    for name in figures:
        lines += [f"### {FIGURES.get(name, name)}", "", f"![{FIGURES.get(name, name)}]({name})", ""]
    lines += ["## Files", "", "* [`results.json`](results.json): every number above, per pair and pooled.",
              "* [`probes.csv`](probes.csv): one row per probe and condition (zero-shot, each strategy, each "
              "reshuffle).", ""]
    if results.get("notes"):
        lines += ["## Notes", ""] + [f"* {n}" for n in results["notes"]] + [""]
    return "\n".join(lines)
