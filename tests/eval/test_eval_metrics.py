"""Measures of middleware.eval.metrics on hand-made distributions."""

import math
import random

import pytest
from scipy.spatial.distance import jensenshannon

from middleware.eval.metrics import (bootstrap_ci, distributional_alignment, error_reduction, histogram,
                                     is_misaligned, js_distance, normalize_logprobs, outcome_counts, p_majority,
                                     share_counts, verdict)


def test_normalize_logprobs_renormalises_over_the_two_options():
    p = normalize_logprobs([math.log(0.02), math.log(0.06)])
    assert p == pytest.approx((0.25, 0.75))
    assert normalize_logprobs([-1000.0, -1001.0])[0] == pytest.approx(1 / (1 + math.exp(-1)))
    assert normalize_logprobs([float("-inf"), -3.0]) == (0.0, 1.0)
    assert normalize_logprobs([float("-inf"), float("-inf")]) == (0.5, 0.5)


def test_share_counts_leave_invalid_answers_out():
    assert share_counts((3, 1, 6)) == (0.75, 0.25)
    assert share_counts((0, 0, 10)) is None
    assert p_majority((0.75, 0.25), 1) == 0.25 and p_majority(None, 0) is None


@pytest.mark.parametrize("before,after,expected", [
    (0.2, 0.6, 0.5),     # err 0.8 -> 0.4: half the error gone
    (0.0, 1.0, 1.0),     # full error, then none: 100%
    (0.0, 0.0, 0.0),     # full error stays
    (0.5, 1.0, 1.0),     # err_after = 0 -> 100%
    (0.6, 0.2, -1.0),    # worsened: negative
])
def test_error_reduction_eq1(before, after, expected):
    assert error_reduction(before, after) == pytest.approx(expected)


def test_error_reduction_without_error_is_undefined():
    assert error_reduction(1.0, 0.3) is None
    assert error_reduction(1.0, 1.0) is None


@pytest.mark.parametrize("p,threshold,expected", [
    (0.49, 0.5, True), (0.5, 0.5, False), (0.0, 0.5, True), (None, 0.5, False),
    (0.9, 1 - 1e-9, True), (1.0, 1 - 1e-9, False), (1.0, 1.0, False),  # err = 0 is never misaligned
])
def test_misaligned(p, threshold, expected):
    assert is_misaligned(p, threshold) is expected


@pytest.mark.parametrize("before,after,tol,expected", [
    (0.3, 0.4, 0.05, "improved"), (0.3, 0.34, 0.05, "unchanged"), (0.3, 0.2, 0.05, "worsened"),
    (0.3, 0.3, 0.0, "unchanged"), (0.3, 0.31, 0.0, "improved"), (0.5, 0.6, 0.1, "unchanged"),
    (None, 0.5, 0.1, None), (0.5, None, 0.1, None),
])
def test_verdict(before, after, tol, expected):
    assert verdict(before, after, tol) == expected


def test_outcome_counts_ignore_missing():
    assert outcome_counts(["improved", "improved", None, "worsened"]) == {"improved": 2, "unchanged": 0,
                                                                         "worsened": 1}


def test_js_distance_matches_scipy():
    rng = random.Random(1)
    cases = [((1.0, 0.0), (0.0, 1.0)), ((0.5, 0.5), (0.5, 0.5)), ((1.0, 0.0), (0.5, 0.5)), ((0.3, 0.7), (0.9, 0.1))]
    cases += [((a, 1 - a), (b, 1 - b)) for a, b in ((rng.random(), rng.random()) for _ in range(50))]
    for p, q in cases:
        assert js_distance(p, q) == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-9)


def test_distributional_alignment_bounds():
    assert distributional_alignment((0.3, 0.7), (0.3, 0.7)) == pytest.approx(1.0)
    assert distributional_alignment((1.0, 0.0), (0.0, 1.0)) == pytest.approx(0.0)
    assert distributional_alignment(None, (0.5, 0.5)) is None
    assert distributional_alignment((0.5, 0.5), None) is None


def test_bootstrap_ci():
    flags = [True] * 30 + [False] * 20
    lo, hi = bootstrap_ci(flags, n_boot=1000, seed=3)
    assert lo < 0.6 < hi and 0.4 < lo and hi < 0.8
    assert bootstrap_ci(flags, n_boot=1000, seed=3) == (lo, hi)
    assert bootstrap_ci([True] * 5) == (1.0, 1.0)
    assert bootstrap_ci([]) is None


def test_histogram_like_numpy():
    import numpy as np

    values = [0.0, 0.05, 0.1, 0.55, 0.999, 1.0, 1.0]
    edges = [i / 10 for i in range(11)]
    assert histogram(values, edges) == np.histogram(values, bins=edges)[0].tolist()
