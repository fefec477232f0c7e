"""--min-margin in the evaluator: near-tie probes stay test probes but are never demonstrations."""

import pytest

from middleware.errors import SelfAlignError
from middleware.eval.config import EvalConfig
from middleware.eval.runner import _conditions, load_pair


def test_min_margin_is_validated():
    with pytest.raises(SelfAlignError, match="min.margin"):
        EvalConfig(pairs=[("ro", "ROU")], min_margin=1.0)
    assert EvalConfig(pairs=[("ro", "ROU")], min_margin=0.1).public()["min_margin"] == 0.1


def test_near_ties_are_left_out_of_demonstrations_only():
    pair = load_pair("ro", "ROU")
    near = {pid for pid, a in pair.answers.items() if a.margin is not None and a.margin < 0.1}
    assert near and all(s.margin == pair.answers[s.probe_id].margin for s in pair.profile.statements)
    loose, strict = EvalConfig(pairs=[("ro", "ROU")]), EvalConfig(pairs=[("ro", "ROU")], min_margin=0.1)
    used_loose, used_strict = set(), set()
    for probe in pair.probes[:40]:
        used_loose |= {d for *_, prompt in _conditions(pair, probe, loose) for d in prompt.demo_ids}
        used_strict |= {d for *_, prompt in _conditions(pair, probe, strict) for d in prompt.demo_ids}
    assert used_loose & near and not used_strict & near
