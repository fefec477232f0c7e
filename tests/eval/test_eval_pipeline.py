"""The evaluation pipeline end to end with a scripted model: verdicts, caching, resume, outputs, bad input."""

from __future__ import annotations

import asyncio
import csv
import json
import math
import re

import pytest
from typer.testing import CliRunner

from middleware.eval import EvalConfig, run_eval, write_outputs
from middleware.errors import ModelCallError
from middleware.eval.backends import Backend, LiteLLMBackend, Request, logprobs_from_top
from middleware.eval.prompts import EvalPrompt
from middleware.eval.runner import load_pair

LIMIT = 6
# (p(majority) zero-shot, p(majority) with demonstrations) for the first six en-USA probes.
SCRIPT = [(0.2, 0.9), (0.3, 0.32), (0.4, 0.1), (0.0, 1.0), (0.7, 0.2), (1.0, 0.5)]


def _question(prompt: EvalPrompt) -> str:
    return re.findall(r"Statement: (.*)\n", prompt.text)[-1]


class ScriptedBackend(Backend):
    """Deterministic option probabilities from a table; counts every request it answers."""

    supports_exact = True

    def __init__(self, table: dict[str, tuple[float, float]], majority: dict[str, int], name: str = "scripted",
                 invalid: int = 0, fail_after: int | None = None):
        self.name = name
        self.table, self.majority = table, majority
        self.invalid = invalid
        self.fail_after = fail_after
        self._calls = 0

    @property
    def calls(self) -> int:
        return self._calls

    def settings(self, mode, samples):
        return {"n": samples} if mode == "sample" else {}

    def p(self, prompt: EvalPrompt) -> float:
        before, after = self.table[_question(prompt)]
        return after if prompt.demo_ids else before

    def run(self, requests, mode, samples, on_result):
        for r in requests:
            if self.fail_after is not None and self._calls >= self.fail_after:
                raise KeyboardInterrupt
            self._calls += 1
            maj = self.majority[_question(r.prompt)]
            p = self.p(r.prompt)
            if mode == "exact":
                dist = [0.0, 0.0]
                dist[maj], dist[1 - maj] = p, 1 - p
                on_result(r, [math.log(x) if x > 0 else float("-inf") for x in dist])
            else:
                k = round(p * samples)
                opts = r.prompt.options
                texts = [f" {opts[maj].capitalize()}."] * k + [opts[1 - maj]] * (samples - k)
                on_result(r, texts + ["no idea"] * self.invalid)


@pytest.fixture(scope="module")
def scripted():
    pair = load_pair("en", "USA", limit=LIMIT)
    table = {p.question: s for p, s in zip(pair.probes, SCRIPT)}
    majority = {p.question: pair.answers[p.id].majority for p in pair.probes}
    return pair, table, majority


def _config(tmp_path, **kw):
    base = dict(model="scripted", pairs=[("en", "USA")], strategies=["chrf"], mode="exact", limit=LIMIT,
                cache=tmp_path / "cache.sqlite3", n_boot=200)
    base.update(kw)
    return EvalConfig(**base)


def test_verdicts_error_reduction_and_table1(tmp_path, scripted):
    _, table, majority = scripted
    run = run_eval(_config(tmp_path), backend=ScriptedBackend(table, majority), progress=False)
    b = run.results["strategies"]["chrf"]
    # Misaligned (p < 0.5): probes 0-3. Probe 4 (0.7 -> 0.2) and 5 (1.0) are not.
    assert b["misaligned"] == 4
    assert (b["improved"], b["unchanged"], b["worsened"]) == (2, 1, 1)
    assert b["improved_pct"] == pytest.approx(50) and b["worsened_pct"] == pytest.approx(25)
    assert b["error_reduction"]["values"] == pytest.approx([0.875, 1.0])
    assert sum(b["error_reduction"]["histogram"]["counts"]) == 2
    assert b["all_probes"] == {"improved": 2, "unchanged": 1, "worsened": 3}
    lo, hi = b["improved_ci95"]
    assert 0 <= lo <= 50 <= hi <= 100
    cats = b["categories"]
    assert sum(c["misaligned"] for c in cats.values()) == 4 and sum(c["probes"] for c in cats.values()) == LIMIT
    assert sum(c["improved"] + c["unchanged"] + c["worsened"] for c in cats.values()) == 4
    z = run.results["pairs"][0]["zero_shot"]
    assert z["misaligned"] == 4 and z["misaligned_pct"] == pytest.approx(100 * 4 / 6)
    # Distributional alignment is over probes with survey shares, before and after.
    d = b["distributional"]
    assert d["n"] == LIMIT and 0 <= d["before"] <= 1 and 0 <= d["after"] <= 1


def test_sample_mode_tolerance_and_invalid_answers(tmp_path, scripted):
    _, table, majority = scripted
    cfg = _config(tmp_path, mode="sample", samples=10, tolerance=0.1)
    run = run_eval(cfg, backend=ScriptedBackend(table, majority, invalid=2), progress=False)
    b = run.results["strategies"]["chrf"]
    # Sample mode: misaligned below 100%: probes 0-4; probe 1 (0.3 -> 0.3 after rounding) is unchanged.
    assert b["misaligned"] == 5
    assert (b["improved"], b["unchanged"], b["worsened"]) == (2, 1, 2)
    zero = [r for r in run.rows if r.condition == "zero-shot"]
    assert all(r.counts[2] == 2 and sum(r.counts) == 12 for r in zero)
    assert run.results["zero_shot"]["invalid_rate"] == pytest.approx(2 / 12)


def test_second_run_makes_no_model_call(tmp_path, scripted):
    _, table, majority = scripted
    cfg = _config(tmp_path, strategies=["chrf", "random"])
    first = ScriptedBackend(table, majority)
    r1 = run_eval(cfg, backend=first, progress=False)
    assert first.calls == r1.requests > 0
    second = ScriptedBackend(table, majority)
    r2 = run_eval(cfg, backend=second, progress=False)
    assert second.calls == 0 and r2.cached == r2.requests
    assert r1.results["strategies"] == r2.results["strategies"]
    # --no-cache asks again.
    third = ScriptedBackend(table, majority)
    run_eval(_config(tmp_path, strategies=["chrf", "random"], use_cache=False), backend=third, progress=False)
    assert third.calls == r1.requests


def test_interrupted_run_resumes(tmp_path, scripted):
    _, table, majority = scripted
    cfg = _config(tmp_path, strategies=["chrf", "chrf-category", "random"])
    with pytest.raises(KeyboardInterrupt):
        run_eval(cfg, backend=ScriptedBackend(table, majority, fail_after=5), progress=False)
    again = ScriptedBackend(table, majority)
    run = run_eval(cfg, backend=again, progress=False)
    assert run.cached == 5 and again.calls == run.requests - 5


def test_cache_key_covers_model_and_settings(tmp_path, scripted):
    _, table, majority = scripted
    run_eval(_config(tmp_path), backend=ScriptedBackend(table, majority), progress=False)
    other = ScriptedBackend(table, majority, name="another-model")
    run_eval(_config(tmp_path), backend=other, progress=False)
    assert other.calls > 0
    sampled = ScriptedBackend(table, majority)
    run_eval(_config(tmp_path, mode="sample", samples=4), backend=sampled, progress=False)
    assert sampled.calls > 0


def test_demonstrations_exclude_the_probe_and_have_answers(tmp_path):
    full = load_pair("en", "USA")
    table = {p.question: (0.5, 0.5) for p in full.probes}
    majority = {p.question: full.answers[p.id].majority for p in full.probes}
    run = run_eval(_config(tmp_path, strategies=["chrf", "random-category"], limit=None), progress=False,
                   backend=ScriptedBackend(table, majority))
    aligned = [r for r in run.rows if r.strategy]
    assert len(aligned) == 2 * len(full.probes)
    assert all(len(r.demo_ids) == 5 and r.probe_id not in r.demo_ids for r in aligned)
    assert all(d in full.answers for r in aligned for d in r.demo_ids)
    # Zero-shot and aligned prompts of a probe show the options in the same (seeded) order.
    orders = {}
    for r in run.rows:
        assert orders.setdefault(r.probe_id, r.option_order) == r.option_order
    assert len({o for o in orders.values()}) == 2


def test_shuffled_orders_and_outputs(tmp_path, scripted):
    _, table, majority = scripted
    cfg = _config(tmp_path, strategies=["chrf", "random"], shuffle_orders=True, orders=2)
    run = run_eval(cfg, backend=ScriptedBackend(table, majority), progress=False)
    conditions = {r.condition for r in run.rows}
    assert conditions == {"zero-shot", "chrf", "chrf@order1", "chrf@order2", "random", "random@order1",
                          "random@order2"}
    for r in run.rows:
        if r.order:
            base = next(x for x in run.rows if x.probe_id == r.probe_id and x.condition == r.strategy)
            assert sorted(r.demo_ids) == sorted(base.demo_ids) and r.demo_ids != base.demo_ids
    o = run.results["strategies"]["chrf"]["orders"]
    assert o["orders"] == 3 and o["verdict_stable_pct"] == 100.0  # the script ignores the order

    out = tmp_path / "out"
    written = write_outputs(run, out)
    names = {p.name for p in written}
    assert {"results.json", "probes.csv", "report.md", "fig2_outcomes.png", "fig3_error_reduction.png",
            "fig7_misalignment.png", "fig8_categories.png", "orders.png"} <= names
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))
    rows = list(csv.DictReader((out / "probes.csv").open(encoding="utf-8")))
    assert len(rows) == LIMIT * 7
    results = json.loads((out / "results.json").read_text())
    assert results["strategies"]["chrf"]["improved"] == 2
    report = (out / "report.md").read_text()
    for name in names - {"report.md"}:
        assert f"({name})" in report
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_arora_probes(tmp_path, shared_data, scripted):
    _, table, majority = scripted
    pair = load_pair("de", "DEU", probes=f"arora:{shared_data / 'arora-probes'}", limit=3)
    assert len(pair.probes) == 3 and all(p.language == "de" for p in pair.probes)
    table = {p.question: (0.3, 0.6) for p in pair.probes}
    majority = {p.question: pair.answers[p.id].majority for p in pair.probes}
    cfg = _config(tmp_path, pairs=[("de", "DEU")], probes=f"arora:{shared_data / 'arora-probes'}", limit=3)
    run = run_eval(cfg, backend=ScriptedBackend(table, majority), progress=False)
    assert run.results["strategies"]["chrf"]["improved"] == 3


# --------------------------------------------------------------------------- litellm backend


def _req(options=("important", "not important"), text="Statement: Family is ___ in my life.\nAnswer:"):
    return Request(key=text + "|".join(options), prompt=EvalPrompt(text, options, (0, 1)))


def test_litellm_backend_concurrency_and_rate_limit_retry():
    from middleware.models.provider import import_litellm

    litellm = import_litellm()
    state = {"inflight": 0, "peak": 0, "failures": 0, "calls": 0}

    async def fake(**kw):
        state["calls"] += 1
        state["inflight"] += 1
        state["peak"] = max(state["peak"], state["inflight"])
        try:
            await asyncio.sleep(0.01)
            if "Family" in kw["messages"][0]["content"] and state["failures"] < 2:
                state["failures"] += 1
                raise litellm.RateLimitError("slow down", llm_provider="openai", model=kw["model"])
            n = min(kw["n"], 2)  # a provider that ignores part of n
            return {"choices": [{"message": {"content": "Not important."}}] * n}
        finally:
            state["inflight"] -= 1

    delays = []

    async def no_sleep(d):
        delays.append(d)

    be = LiteLLMBackend("openai/gpt-x", concurrency=3, completion=fake, sleep=no_sleep)
    reqs = [_req(text=f"Statement: Q{i} ___.\nAnswer:") for i in range(10)] + [_req()]
    got = {}
    be.run(reqs, "sample", 5, lambda r, v: got.__setitem__(r.key, v))
    assert len(got) == 11 and all(len(v) == 5 for v in got.values())
    assert state["peak"] <= 3 and len(delays) == 2 and be.retries == 2
    assert be.calls == state["calls"]


def test_litellm_backend_gives_up_with_one_line_error():
    async def broken(**kw):
        raise ValueError("invalid api key\nmore details")

    be = LiteLLMBackend("openai/gpt-x", completion=broken)
    with pytest.raises(ModelCallError, match="invalid api key$"):
        be.run([_req()], "sample", 2, lambda r, v: None)


def test_litellm_exact_mode_reads_top_logprobs():
    async def fake(**kw):
        assert kw["logprobs"] is True and kw["temperature"] == 0
        top = [{"token": " Not", "logprob": math.log(0.5)}, {"token": " important", "logprob": math.log(0.3)},
               {"token": " not", "logprob": math.log(0.1)}, {"token": "The", "logprob": math.log(0.05)}]
        return {"choices": [{"logprobs": {"content": [{"token": " Not", "logprob": math.log(0.5),
                                                         "top_logprobs": top}]}}]}

    got = {}
    LiteLLMBackend("m", completion=fake).run([_req()], "exact", 1, lambda r, v: got.setdefault("v", v))
    assert [math.exp(x) for x in got["v"]] == pytest.approx([0.3, 0.6])

    async def none(**kw):
        return {"choices": [{"message": {"content": "x"}}]}

    with pytest.raises(ModelCallError, match="no log-probabilities"):
        LiteLLMBackend("m", completion=none).run([_req()], "exact", 1, lambda r, v: None)


def test_logprobs_from_top_walks_a_shared_prefix():
    content = [
        {"token": " very", "top_logprobs": [{"token": " very", "logprob": -0.1}, {"token": " Very", "logprob": -2.5}]},
        {"token": " important", "top_logprobs": [{"token": " important", "logprob": math.log(0.6)},
                                                 {"token": " unimportant", "logprob": math.log(0.2)}]},
    ]
    lp = logprobs_from_top(content, ("very important", "very unimportant"))
    assert [math.exp(x) for x in lp] == pytest.approx([0.6, 0.2])
    assert logprobs_from_top([{"token": "The", "top_logprobs": [{"token": "The", "logprob": -0.1}]}],
                             ("agree", "disagree")) is None


# --------------------------------------------------------------------------- CLI bad input


@pytest.mark.parametrize("args,needle", [
    (["--country", "zz"], "unknown country 'zz'"),
    (["--language", "xx"], "unknown language 'xx'"),
    (["--language", "en", "--country", "fj"], "no survey answers"),
    (["--language", "en", "--probes", "arora:/nonexistent/dir"], "probe folder not found"),
    (["--language", "en", "--probes", "wikipedia"], "--probes must be builtin or arora:DIR"),
    (["--language", "en", "--strategy", "best"], "unknown strategy 'best'"),
    (["--language", "en", "--mode", "guess"], "unknown mode 'guess'"),
    (["--pairs", "en"], "LANG-COUNTRY"),
    ([], "give --language"),
])
def test_bad_input_is_one_line_exit_2(args, needle, tmp_path):
    from middleware.cli import app

    res = CliRunner().invoke(app, ["eval", *args, "--cache", str(tmp_path / "c.sqlite3")])
    assert res.exit_code == 2, res.output
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- pairs


def test_resolve_pairs():
    from middleware.eval.runner import resolve_pairs

    assert resolve_pairs("ro", None)[0] == [("ro", "ROU")]
    assert resolve_pairs(None, "Germany")[0] == [("de", "DEU")]
    assert resolve_pairs("en", "ro")[0] == [("en", "ROU")]
    assert resolve_pairs(pairs="en-us, de:de")[0] == [("en", "USA"), ("de", "DEU")]
    paper, notes = resolve_pairs(pairs="paper")
    assert ("en", "USA") in paper and ("de", "DEU") in paper
    assert len(paper) + len(notes) == 14


def test_hosted_vllm_over_http_with_a_rate_limit(tmp_path):
    """The README's vLLM route (hosted_vllm/NAME + api_base) against a scripted OpenAI-compatible server."""
    from fake_upstream import FakeUpstream, Fault

    with FakeUpstream(reply="Not important.") as up:
        up.fail_next(Fault(status=429, retry_after=0))
        be = LiteLLMBackend("hosted_vllm/fake-model", api_base=up.url, concurrency=2, backoff=0.01)
        cfg = _config(tmp_path, model="hosted_vllm/fake-model", api_base=up.url, mode="sample", samples=3, limit=2)
        run = run_eval(cfg, backend=be, progress=False)
        assert be.retries >= 1
        assert len(up.chat_requests) >= run.requests + 1
        body = up.chat_requests[-1].body
        assert body["model"] == "fake-model" and "Answer:" in body["messages"][0]["content"]
    for r in run.rows:
        assert r.responses and len(r.responses) == 3
        not_important = r.options.index("not important") if "not important" in r.options else None
        if not_important is not None:
            assert r.counts[not_important] == 3


def test_local_cache_settings_name_the_runtime_and_precision(monkeypatch):
    from middleware.eval.backends import LocalBackend

    monkeypatch.delenv("SELFALIGN_RUNTIME", raising=False)
    plain = LocalBackend("local/gemma-3-270m?runtime=llamacpp").settings("exact", 1)
    # Unchanged for the stored weights, so caches written before ?precision existed stay valid.
    assert plain == {"scoring": "option-logprobs", "runtime": "llamacpp"}
    f16 = LocalBackend("local/gemma-3-270m?runtime=llamacpp&precision=f16")
    assert f16.settings("exact", 1) == {**plain, "precision": "f16"}
    assert f16.settings("sample", 4)["precision"] == "f16"


def test_logprobs_from_top_does_not_read_a_pronoun_as_an_option():
    # " I" (as in "I think") begins "important" only if case is ignored; the capitalised whole words count.
    content = [{"token": " I", "top_logprobs": [{"token": " I", "logprob": math.log(0.5)},
                                                 {"token": " Important", "logprob": math.log(0.1)},
                                                 {"token": " Not", "logprob": math.log(0.3)},
                                                 {"token": " im", "logprob": math.log(0.05)}]}]
    lp = logprobs_from_top(content, ("important", "not important"))
    assert [math.exp(x) for x in lp] == pytest.approx([0.15, 0.3])


def test_system_injection_reports_the_probes_the_gate_left_without_demonstrations(tmp_path, scripted):
    """With --injection system the product's decision applies: a threshold no probe reaches leaves every probe
    without statements (as a user would get them), 0 gives each its k; results and report say which."""
    from middleware.eval.report import render_report

    _, table, majority = scripted
    got, report = {}, {}
    for threshold in (0.0, 1.0):
        run = run_eval(_config(tmp_path, injection="system", min_relevance=threshold, n_boot=0),
                       backend=ScriptedBackend(table, majority), progress=False)
        got[threshold] = run.results["strategies"]["chrf"]
        rows = [r for r in run.rows if r.condition == "chrf"]
        assert got[threshold]["without_demonstrations"] == sum(not r.demo_ids for r in rows)
        report[threshold] = render_report(run.results, [])
    assert got[0.0]["without_demonstrations"] == 0 and got[0.0]["mean_demonstrations"] == 5
    assert got[1.0]["without_demonstrations"] == LIMIT and got[1.0]["mean_demonstrations"] == 0
    assert got[1.0]["improved"] == 0  # nothing injected: every aligned prompt is the zero-shot one
    assert "chrf 5.0 (0 of 6 probes got none)" in report[0.0]
    assert "Demonstrations per probe" not in report[1.0]  # none were given


def test_continuation_logprob_sums_the_tokens_of_the_continuation():
    from middleware.eval.backends import continuation_logprob

    # "Answer:" | " dis" | "agree" | "\n" (generated): the continuation is " disagree", chars 7-16.
    lps, offsets = [None, -0.5, -1.0, -2.0, -4.0], [0, 6, 7, 11, 16]
    assert continuation_logprob(lps, offsets, 7, 16) == pytest.approx(-3.0)
    # A token straddling the boundary (":" + " dis" merged) counts, as local scoring counts it.
    assert continuation_logprob([None, -1.5, -2.0, -4.0], [0, 6, 11, 16], 7, 16) == pytest.approx(-3.5)
    with pytest.raises(ModelCallError, match="no prompt log-probabilities"):
        continuation_logprob([], [], 7, 16)
    with pytest.raises(ModelCallError, match="no log-probability"):
        continuation_logprob([None, None], [0, 7], 7, 16)


def test_api_scoring_is_for_api_models_in_exact_mode():
    from middleware.errors import InputError

    with pytest.raises(InputError, match="--api-scoring applies"):
        EvalConfig(model="local/gemma-3-270m", api_scoring="echo")
    with pytest.raises(InputError, match="unknown API scoring"):
        EvalConfig(model="openai/x", mode="exact", api_scoring="prompt")
    assert EvalConfig(model="openai/x", mode="exact", api_scoring="echo").public()["api_scoring"] == "echo"
