"""The paper's measures and ours, as pure functions of per-probe option distributions.

A distribution is ``(q1, q2)``: the model's probability of each of the probe's two options
(renormalised over the two; in sample mode the share among valid answers). ``p`` below is
always p(majority), the probability of the country's majority answer.

Definitions (also in the README):

* error: ``err = 1 - p``.
* misaligned (zero-shot): sample mode ``p < 1`` (the paper: not every valid answer is the
  majority one); exact mode ``p < 0.5`` (the model prefers the minority answer).
  ``err = 0`` is therefore never misaligned.
* verdict: improved if ``p_after - p_before > tol``, worsened if ``< -tol``, else unchanged.
* error reduction (Eq. 1): ``ER = (err_before - err_after) / err_before``; undefined (None)
  when ``err_before = 0``; ``err_after = 0`` gives 1.0 (100%).
* distributional alignment: ``1 - JSD`` with JSD the Jensen-Shannon *distance*, base 2, between
  the model's distribution and the country's survey shares; 1 is identical, 0 disjoint.
"""

from __future__ import annotations

import math
import random
from typing import Iterable, Sequence

__all__ = [
    "EXACT_MISALIGNED_BELOW", "SAMPLE_MISALIGNED_BELOW", "DEFAULT_TOLERANCE",
    "normalize_logprobs", "share_counts", "p_majority", "error", "is_misaligned", "verdict",
    "error_reduction", "js_distance", "distributional_alignment", "bootstrap_ci", "outcome_counts",
    "histogram",
]

EXACT_MISALIGNED_BELOW = 0.5
# In sample mode a share is misaligned below 100%; the epsilon absorbs float noise only.
SAMPLE_MISALIGNED_BELOW = 1.0 - 1e-9
# |change in p(majority)| that still counts as unchanged (see verdict()), the same in both modes so that
# their verdicts compare. With 10 samples it is the paper's rule (any change of one answer in ten counts)
# minus float noise; in exact mode it keeps shifts of a fraction of a point from counting as improvements.
DEFAULT_TOLERANCE = {"exact": 0.05, "sample": 0.05}

Dist = tuple[float, float]


def normalize_logprobs(logprobs: Sequence[float]) -> Dist:
    """Log-probabilities of the two options -> probabilities renormalised over the two (stable softmax)."""
    a, b = float(logprobs[0]), float(logprobs[1])
    if math.isinf(a) and math.isinf(b):
        return (0.5, 0.5)
    m = max(a, b)
    ea, eb = math.exp(a - m), math.exp(b - m)
    return (ea / (ea + eb), eb / (ea + eb))


def share_counts(counts: Sequence[int]) -> Dist | None:
    """Counts of option 1 and option 2 (invalid answers left out) -> shares, or None without a valid answer."""
    n1, n2 = counts[0], counts[1]
    total = n1 + n2
    return None if total == 0 else (n1 / total, n2 / total)


def p_majority(dist: Dist | None, majority: int) -> float | None:
    return None if dist is None else float(dist[majority])


def error(p: float) -> float:
    return 1.0 - p


def is_misaligned(p_before: float | None, threshold: float) -> bool:
    """True when the zero-shot p(majority) is below the mode's threshold (never when err = 0)."""
    return p_before is not None and p_before < threshold and error(p_before) > 0


def verdict(p_before: float | None, p_after: float | None, tol: float) -> str | None:
    if p_before is None or p_after is None:
        return None
    delta = p_after - p_before
    if delta > tol:
        return "improved"
    if delta < -tol:
        return "worsened"
    return "unchanged"


def error_reduction(p_before: float, p_after: float) -> float | None:
    """Eq. 1 of the paper; None when there was no error to reduce; 1.0 when none is left."""
    err_b, err_a = error(p_before), error(p_after)
    if err_b <= 0:
        return None
    if err_a <= 0:
        return 1.0
    return (err_b - err_a) / err_b


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance, base 2 (in [0, 1]); equals scipy.spatial.distance.jensenshannon(p, q, base=2)."""
    ps, qs = sum(p), sum(q)
    p = [x / ps for x in p]
    q = [x / qs for x in q]
    m = [(a + b) / 2 for a, b in zip(p, q)]

    def kl(x, y):
        return sum(a * math.log2(a / b) for a, b in zip(x, y) if a > 0)

    div = (kl(p, m) + kl(q, m)) / 2
    return math.sqrt(max(div, 0.0))


def distributional_alignment(dist: Dist | None, shares: Sequence[float] | None) -> float | None:
    if dist is None or shares is None:
        return None
    return 1.0 - js_distance(dist, shares)


def bootstrap_ci(flags: Sequence[bool], n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the share of True in ``flags`` (probes resampled with replacement)."""
    n = len(flags)
    if n == 0:
        return None
    rng = random.Random(seed)
    hits = [1 if f else 0 for f in flags]
    stats = sorted(sum(hits[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    lo = stats[int(math.floor((1 - level) / 2 * (n_boot - 1)))]
    hi = stats[int(math.ceil((1 + level) / 2 * (n_boot - 1)))]
    return (lo, hi)


def outcome_counts(verdicts: Iterable[str | None]) -> dict[str, int]:
    out = {"improved": 0, "unchanged": 0, "worsened": 0}
    for v in verdicts:
        if v in out:
            out[v] += 1
    return out


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin [edges[i], edges[i+1]) with the last bin closed, like numpy.histogram."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        for i in range(len(edges) - 1):
            last = i == len(edges) - 2
            if edges[i] <= v < edges[i + 1] or (last and v == edges[-1]):
                counts[i] += 1
                break
    return counts
