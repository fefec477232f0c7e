"""Benchmark: exact mode vs sample mode of ``selfalign eval`` on the embedded model.

Same probes, same prompts (zero-shot and chrf-aligned): exact mode reads the two options'
log-probabilities in one forward pass per prompt; sample mode draws n answers per prompt at
temperature 1 and parses them. Reported:

* model forward passes: batched calls, and passes per sequence (a prompt scored in exact mode
  is one; n samples of t tokens are n*t);
* wall time;
* how often the per-probe verdict (improved / unchanged / worsened) agrees, at the default
  tolerance and over a sweep of tolerances;
* the noise ceiling: the same agreement between two sample runs that differ only by the
  sampling seed (sample mode cannot agree with exact mode more than with itself);
* convergence: on aligned prompts, the share of option 1 among many samples vs exact p.

    python3 benchmarks/eval_modes.py --probes 20 --samples 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from middleware.eval import EvalConfig, run_eval  # noqa: E402
from middleware.eval.backends import LocalBackend  # noqa: E402
from middleware.eval.metrics import verdict  # noqa: E402


def _run(mode: str, args, sample_seed: int = 0):
    cfg = EvalConfig(model="local/gemma-3-270m", pairs=[(args.language, args.country)], strategies=[args.strategy],
                     mode=mode, samples=args.samples, limit=args.probes, use_cache=False, n_boot=0)
    backend = LocalBackend(cfg.model, progress=False, sample_seed=sample_seed)
    backend.model  # load outside the timed region
    t0 = time.perf_counter()
    run = run_eval(cfg, backend=backend, progress=False)
    seconds = time.perf_counter() - t0
    # Snapshot now: the model (and its forward counter) is shared by the runs that follow.
    return run, seconds, {"calls": run.model_calls, "passes": run.sequence_passes}


def _convergence(exact, prompts: int, samples: int) -> dict:
    """Sample many answers for the first aligned prompts; compare the option-1 share with exact p."""
    import math

    from middleware.eval.backends import Request
    from middleware.eval.parse import parse_answer

    aligned = [r for r in exact.rows if r.condition == exact.config.strategies[0]][:prompts]
    backend = LocalBackend(exact.config.model, progress=False, sample_seed=7)
    diffs, within, valid = [], 0, []
    t0 = time.perf_counter()
    for r in aligned:
        prompt = exact.prompts[r.key]
        texts = []
        backend.run([Request(f"converge:{r.key}", prompt)], "sample", samples, lambda _, v: texts.extend(v))
        parsed = [parse_answer(t, prompt.options) for t in texts]
        n = parsed.count(0) + parsed.count(1)
        valid.append(n / len(parsed))
        if n:
            share = parsed.count(0) / n
            diffs.append(abs(share - r.dist[0]))
            se = math.sqrt(max(r.dist[0] * (1 - r.dist[0]), 1e-9) / n)
            within += abs(share - r.dist[0]) <= 2 * se + 1e-9
    return {"prompts": len(aligned), "samples": samples, "mean_abs_diff": sum(diffs) / max(1, len(diffs)),
            "max_abs_diff": max(diffs, default=None), "within_2se": within, "compared": len(diffs),
            "valid_rate": sum(valid) / max(1, len(valid)), "seconds": time.perf_counter() - t0}


def _pairs(run):
    zero = {r.probe_id: r.p for r in run.rows if r.condition == "zero-shot"}
    after = {r.probe_id: r.p for r in run.rows if r.condition == run.config.strategies[0]}
    return zero, after


def _agreement(a, b, tol_a: float, tol_b: float, only=None):
    za, aa = _pairs(a)
    zb, ab = _pairs(b)
    ids = [i for i in za if only is None or i in only]
    both = [(verdict(za[i], aa[i], tol_a), verdict(zb[i], ab[i], tol_b)) for i in ids]
    defined = [(x, y) for x, y in both if x and y]
    same = sum(x == y for x, y in defined)
    return same, len(defined), len(both)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--language", default="en")
    ap.add_argument("--country", default="USA")
    ap.add_argument("--strategy", default="chrf")
    ap.add_argument("--converge-prompts", type=int, default=10, help="Aligned prompts for the convergence check "
                    "(0: skip).")
    ap.add_argument("--converge-samples", type=int, default=100)
    ap.add_argument("--json", type=Path, help="Also write the figures as JSON here.")
    args = ap.parse_args()
    console = Console()

    exact, t_exact, be_exact = _run("exact", args)
    sample, t_sample, be_sample = _run("sample", args)
    sample2, t_sample2, _ = _run("sample", args, sample_seed=1)

    tol_e, tol_s = exact.config.effective_tolerance(), sample.config.effective_tolerance()
    mis_exact = {r.probe_id for r in exact.rows if r.condition == "zero-shot" and r.misaligned}
    agree = _agreement(exact, sample, tol_e, tol_s)
    agree_mis = _agreement(exact, sample, tol_e, tol_s, only=mis_exact)
    ceiling = _agreement(sample, sample2, tol_s, tol_s)
    sweep = {t: (_agreement(exact, sample, t, t), _agreement(sample, sample2, t, t)) for t in (0.0, 0.1, 0.2, 0.3)}
    invalid = sum(r.counts[2] for r in sample.rows) / sum(sum(r.counts) for r in sample.rows)

    prompts = exact.requests
    table = Table(title=f"exact vs sample (n={args.samples}) on {args.probes} {args.language}-{args.country} "
                        f"probes, {args.strategy}: {prompts} prompts")
    for col in ("", "exact", f"sample n={args.samples}", "ratio"):
        table.add_column(col, justify="right")
    table.add_row("forward calls (batched)", str(be_exact["calls"]), str(be_sample["calls"]),
                  f"{be_sample['calls'] / max(1, be_exact['calls']):.0f}x")
    table.add_row("forward passes per sequence", str(be_exact["passes"]), str(be_sample["passes"]),
                  f"{be_sample['passes'] / max(1, be_exact['passes']):.0f}x")
    table.add_row("wall time (s)", f"{t_exact:.1f}", f"{t_sample:.1f}", f"{t_sample / t_exact:.1f}x")
    table.add_row("invalid sampled answers", "–", f"{100 * invalid:.0f}%", "")
    console.print(table)

    def pct(a):
        return f"{a[0]}/{a[1]} = {100 * a[0] / max(1, a[1]):.0f}%" + (f" ({a[2] - a[1]} without a verdict)"
                                                                      if a[2] != a[1] else "")

    console.print(f"verdict agreement, exact (tol {tol_e}) vs sample (tol {tol_s}): all probes {pct(agree)}; "
                  f"probes misaligned in exact mode {pct(agree_mis)}")
    console.print(f"noise ceiling, sample vs sample with another seed (tol {tol_s}): {pct(ceiling)}")
    for t, (ea, ss) in sweep.items():
        console.print(f"  same tolerance {t:.1f}: exact vs sample {pct(ea)}; sample vs sample {pct(ss)}")
    conv = _convergence(exact, args.converge_prompts, args.converge_samples) if args.converge_prompts else None
    if conv:
        console.print(f"convergence on {conv['prompts']} aligned prompts, {conv['samples']} samples each "
                      f"({100 * conv['valid_rate']:.0f}% valid): |sampled share - exact p| mean "
                      f"{conv['mean_abs_diff']:.3f}, max {conv['max_abs_diff']:.3f}; within 2 standard errors: "
                      f"{conv['within_2se']}/{conv['compared']}")
    if args.json:
        args.json.write_text(json.dumps({
            "probes": args.probes, "samples": args.samples, "prompts": prompts,
            "exact": {"forward_calls": be_exact["calls"], "sequence_passes": be_exact["passes"], "seconds": t_exact},
            "sample": {"forward_calls": be_sample["calls"], "sequence_passes": be_sample["passes"],
                       "seconds": t_sample, "invalid_rate": invalid},
            "agreement": {"all": agree, "misaligned": agree_mis, "sample_vs_sample": ceiling,
                          "sweep": {str(t): v for t, v in sweep.items()}},
            "convergence": conv,
        }, indent=2))


if __name__ == "__main__":
    main()
