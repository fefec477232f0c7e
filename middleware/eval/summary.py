"""From per-probe rows to the study's numbers: Table 1, Figures 2/3/7/8, distributional alignment, order robustness.

Every aggregate is computed per language/country pair and pooled over pairs, per strategy,
on the demonstrations' retrieval order (order 0); reshuffled orders only feed ``orders``.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Iterable

from .metrics import (bootstrap_ci, distributional_alignment, error_reduction, histogram, is_misaligned,
                      outcome_counts, p_majority, verdict)
from .config import ZERO_SHOT
from .records import EvalRun, Row

__all__ = ["annotate", "summarise", "ER_EDGES"]

ER_EDGES = [i / 10 for i in range(11)]


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def annotate(run: EvalRun) -> None:
    """Fill each row's p(majority), misalignment, verdict, error reduction and distributional alignment."""
    threshold = run.config.misaligned_threshold()
    tol = run.config.effective_tolerance()
    zero: dict[tuple[str, str], Row] = {}
    for row in run.rows:
        row.p = p_majority(row.dist, row.majority)
        row.alignment = distributional_alignment(row.dist, row.shares)
        if row.condition == ZERO_SHOT:
            zero[(row.pair, row.probe_id)] = row
    for row in run.rows:
        z = zero[(row.pair, row.probe_id)]
        row.p_before = z.p
        row.misaligned = is_misaligned(z.p, threshold)
        if row.condition != ZERO_SHOT:
            row.verdict = verdict(z.p, row.p, tol)
            if z.p is not None and row.p is not None:
                row.error_reduction = error_reduction(z.p, row.p)


def _invalid_rate(rows: list[Row]) -> float | None:
    counts = [r.counts for r in rows if r.counts is not None]
    total = sum(sum(c) for c in counts)
    return None if total == 0 else sum(c[2] for c in counts) / total


def _zero_block(rows: list[Row]) -> dict:
    answered = [r for r in rows if r.p is not None]
    mis = sum(r.misaligned for r in rows)
    return {"probes": len(rows), "answered": len(answered), "misaligned": mis,
            "misaligned_pct": _pct(mis, len(answered)), "mean_p_majority": _mean(r.p for r in answered),
            "invalid_rate": _invalid_rate(rows),
            "distributional": {"n": sum(r.alignment is not None for r in rows),
                               "mean": _mean(r.alignment for r in rows)}}


def _strategy_block(rows: list[Row], zero_by_probe: dict[tuple[str, str], Row], n_boot: int, seed: int,
                    shuffled: list[Row]) -> dict:
    mis = [r for r in rows if r.misaligned]
    judged = [r for r in mis if r.verdict is not None]
    counts = outcome_counts(r.verdict for r in judged)
    improved = [r for r in judged if r.verdict == "improved"]
    ers = sorted(r.error_reduction for r in improved if r.error_reduction is not None)
    ci = bootstrap_ci([r.verdict == "improved" for r in judged], n_boot=n_boot, seed=seed) if n_boot else None

    cats: dict[str, dict] = defaultdict(lambda: {"probes": 0, "misaligned": 0, "improved": 0, "unchanged": 0,
                                                 "worsened": 0})
    for r in rows:
        c = cats[r.category or "(none)"]
        c["probes"] += 1
        if r.misaligned:
            c["misaligned"] += 1
            if r.verdict:
                c[r.verdict] += 1
    for c in cats.values():
        c["improved_pct"] = _pct(c["improved"], c["improved"] + c["unchanged"] + c["worsened"])

    both = [(zero_by_probe[(r.pair, r.probe_id)].alignment, r.alignment) for r in rows
            if r.alignment is not None and zero_by_probe[(r.pair, r.probe_id)].alignment is not None]
    block = {
        "probes": len(rows),
        "misaligned": len(mis),
        **counts,
        "no_valid_answer": len(mis) - len(judged),
        "improved_pct": _pct(counts["improved"], len(judged)),
        "unchanged_pct": _pct(counts["unchanged"], len(judged)),
        "worsened_pct": _pct(counts["worsened"], len(judged)),
        "improved_ci95": None if ci is None else [100 * ci[0], 100 * ci[1]],
        "error_reduction": {"n": len(ers), "mean": _mean(ers), "median": statistics.median(ers) if ers else None,
                            "values": [round(v, 6) for v in ers],
                            "histogram": {"edges": ER_EDGES, "counts": histogram(ers, ER_EDGES)}},
        "all_probes": outcome_counts(r.verdict for r in rows),
        "mean_p_majority": {"before": _mean(r.p_before for r in rows if r.p is not None),
                            "after": _mean(r.p for r in rows if r.p is not None)},
        "categories": dict(sorted(cats.items())),
        "distributional": {"n": len(both), "before": _mean(b for b, _ in both), "after": _mean(a for _, a in both),
                           "improved": sum(a > b for b, a in both)},
        "invalid_rate": _invalid_rate(rows),
        # With --injection system the relevance gate and the floor decide, as for a user: how many probes got
        # no demonstration at all (a strategy without demonstrations, cultural, always counts them all).
        "without_demonstrations": sum(not r.demo_ids for r in rows),
        "mean_demonstrations": _mean(len(r.demo_ids) for r in rows),
    }
    if shuffled:
        block["orders"] = _orders_block(rows, shuffled)
    return block


def _orders_block(rows: list[Row], shuffled: list[Row]) -> dict:
    """Robustness to the demonstrations' order: the study repeated on each reshuffle."""
    by_order: dict[int, list[Row]] = defaultdict(list)
    for r in [*rows, *shuffled]:
        by_order[r.order].append(r)
    pct = {}
    for order, rs in sorted(by_order.items()):
        judged = [r for r in rs if r.misaligned and r.verdict is not None]
        pct[order] = _pct(sum(r.verdict == "improved" for r in judged), len(judged))
    per_probe: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in [*rows, *shuffled]:
        per_probe[(r.pair, r.probe_id)].append(r)
    mis_groups = [g for g in per_probe.values() if g[0].misaligned and all(r.verdict for r in g)]
    stable = sum(len({r.verdict for r in g}) == 1 for g in mis_groups)
    stds = [statistics.pstdev([r.p for r in g]) for g in per_probe.values() if all(r.p is not None for r in g)
            and len(g) > 1]
    values = [v for v in pct.values() if v is not None]
    return {"orders": len(by_order), "improved_pct": {str(k): v for k, v in pct.items()},
            "improved_pct_mean": _mean(values), "improved_pct_min": min(values) if values else None,
            "improved_pct_max": max(values) if values else None,
            "verdict_stable_pct": _pct(stable, len(mis_groups)), "mean_p_std": _mean(stds)}


def summarise(run: EvalRun) -> dict:
    annotate(run)
    cfg = run.config
    zero_by_probe = {(r.pair, r.probe_id): r for r in run.rows if r.condition == ZERO_SHOT}

    def blocks(rows: list[Row]) -> dict:
        out = {}
        for s, *_ in cfg.conditions():
            main = [r for r in rows if r.strategy == s and r.order == 0]
            shuffled = [r for r in rows if r.strategy == s and r.order > 0]
            out[s] = _strategy_block(main, zero_by_probe, cfg.n_boot, cfg.seed, shuffled)
        return out

    pairs = []
    for pair in run.pairs:
        rows = [r for r in run.rows if r.pair == pair.label]
        pairs.append({"pair": pair.label, "language": pair.language, "country": pair.country.alpha3,
                      "country_name": pair.country.name, "test_probes": len(pair.probes),
                      "answered_probes": len(pair.pool),
                      "with_shares": sum(pair.answers[p.id].shares is not None for p in pair.probes),
                      "zero_shot": _zero_block([r for r in rows if r.condition == ZERO_SHOT]),
                      "strategies": blocks(rows)})
    return {
        "config": cfg.public(),
        "run": {"requests": run.requests, "cached": run.cached, "model_calls": run.model_calls,
                "sequence_forward_passes": run.sequence_passes, "seconds": round(run.seconds, 2)},
        "zero_shot": _zero_block([r for r in run.rows if r.condition == ZERO_SHOT]),
        "strategies": blocks(run.rows),
        "pairs": pairs,
        "notes": list(run.notes),
    }
