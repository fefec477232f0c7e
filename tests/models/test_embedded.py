"""The embedded models on both runtimes: llama.cpp (fast, the default) and transformers (slow).

The same behaviour is asserted for each runtime: greedy text equals its stream, stop strings
cut, seeds reproduce, closing a stream stops decoding, options are scored, chat prompts use
the GGUF's template (SmolLM2) or plain role labels (base Gemma).  The transformers runtime
converts the GGUF once (about a minute) and is marked slow.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from middleware.models.loading import get_local_model
from middleware.models.registry import BASE_MODEL, CHAT_MODEL, UnknownModelError, parse_model

ROOT = Path(__file__).resolve().parents[2]
HAVE_LLAMACPP = importlib.util.find_spec("xllamacpp") is not None
HAVE_TORCH = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))

LLAMACPP = pytest.param("llamacpp", id="llamacpp",
                        marks=pytest.mark.skipif(not HAVE_LLAMACPP, reason="xllamacpp not installed"))
TRANSFORMERS = pytest.param("transformers", id="transformers",
                            marks=[pytest.mark.slow,
                                   pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")])


@pytest.fixture(scope="module", params=[LLAMACPP, TRANSFORMERS])
def gemma(request):
    return get_local_model(f"{BASE_MODEL}?runtime={request.param}", progress=False)


@pytest.fixture(scope="module")
def smollm():
    if not HAVE_LLAMACPP:
        pytest.skip("xllamacpp not installed")
    return get_local_model(CHAT_MODEL, progress=False)


# --------------------------------------------------------------------------- names


def test_model_names_pick_runtimes(monkeypatch, tmp_path):
    monkeypatch.delenv("SELFALIGN_RUNTIME", raising=False)
    assert parse_model("local/gemma-3-270m").runtime == ("llamacpp" if HAVE_LLAMACPP else "transformers")
    assert parse_model("local/gemma-3-270m?runtime=transformers").runtime == "transformers"
    assert parse_model("local/").name == CHAT_MODEL
    assert parse_model(str(tmp_path)).runtime == "transformers"  # a checkpoint directory
    monkeypatch.setenv("SELFALIGN_RUNTIME", "transformers")
    assert parse_model("local/smollm2-135m-instruct").runtime == "transformers"
    with pytest.raises(UnknownModelError, match="runtime"):
        parse_model("local/gemma-3-270m?runtime=onnx")
    with pytest.raises(UnknownModelError, match="not an embedded model"):
        parse_model("local/gpt-5")


def test_precision_option(monkeypatch):
    monkeypatch.delenv("SELFALIGN_RUNTIME", raising=False)
    spec = parse_model("local/gemma-3-270m?runtime=llamacpp&precision=F16")
    assert (spec.runtime, spec.precision) == ("llamacpp", "f16")
    assert spec.key == "gemma-3-270m?runtime=llamacpp&precision=f16"
    assert parse_model("local/gemma-3-270m?runtime=llamacpp").precision is None
    with pytest.raises(UnknownModelError, match="use f16 or f32"):
        parse_model("local/gemma-3-270m?runtime=llamacpp&precision=q8")
    with pytest.raises(UnknownModelError, match="transformers runtime always computes in float32"):
        parse_model("local/gemma-3-270m?runtime=transformers&precision=f16")
    with pytest.raises(UnknownModelError, match="unknown option 'dtype'"):
        parse_model("local/gemma-3-270m?dtype=f16")


# --------------------------------------------------------------------------- both runtimes


def test_greedy_generate_equals_stream(gemma):
    (c,) = gemma.generate("The capital of France is", max_tokens=8, temperature=0)
    assert c.text.strip() and 0 < c.completion_tokens <= 8
    assert "".join(gemma.stream("The capital of France is", max_tokens=8, temperature=0)) == c.text


def test_stop_string_ends_text(gemma):
    (free,) = gemma.generate("Count: 1, 2, 3,", max_tokens=12, temperature=0)
    assert " 5" in free.text, free.text  # the premise: greedy Gemma counts on
    (c,) = gemma.generate("Count: 1, 2, 3,", max_tokens=12, temperature=0, stop=[" 5"])
    assert c.finish_reason == "stop" and c.text == free.text[:free.text.index(" 5")]
    streamed = "".join(gemma.stream("Count: 1, 2, 3,", max_tokens=12, temperature=0, stop=[" 5"]))
    assert streamed == c.text


def test_length_finish_and_usage(gemma):
    (c,) = gemma.generate("Once upon a time", max_tokens=5, temperature=0)
    assert c.finish_reason == "length" and c.completion_tokens == 5 and c.prompt_tokens >= 4


def test_seeded_samples_reproduce(gemma):
    a = gemma.generate("The cat", max_tokens=8, temperature=1.0, top_p=0.9, n=3, seed=7)
    b = gemma.generate("The cat", max_tokens=8, temperature=1.0, top_p=0.9, n=3, seed=7)
    assert len(a) == 3 and [x.text for x in a] == [x.text for x in b]
    assert len({x.text for x in a}) > 1  # n samples are not one sample thrice


def test_closing_a_stream_stops_decoding(gemma):
    stream = gemma.stream("Once upon a time", max_tokens=400, temperature=0)
    next(stream)
    before = gemma.forward_passes
    stream.close()
    (c,) = gemma.generate("Hi", max_tokens=1, temperature=0)
    # One more evaluation (the generate above), not the rest of a 400-token story.
    assert gemma.forward_passes - before <= 2 and c.completion_tokens == 1


def test_option_logprobs(gemma):
    (scores, spaced) = gemma.option_logprobs(["The capital of France is", "The capital of France is "],
                                             [[" Paris", " banana", ""], ["Paris", "banana"]])
    assert scores[0] > scores[1] and scores[2] == 0.0 and all(s <= 0 for s in scores)
    # Trailing whitespace moves onto the option: the same scores.
    assert spaced == pytest.approx(scores[:2], abs=1e-4)
    assert math.exp(scores[0]) > 0.05


def test_base_model_chat_uses_role_labels(gemma):
    prompt, stops = gemma.format_chat([{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Hi"}])
    assert prompt == "System: Be brief.\n\nUser: Hi\n\nAssistant:" and "\nUser:" in stops


# --------------------------------------------------------------------------- the chat model


def test_chat_model_uses_gguf_template_and_follows_the_system_prompt(smollm):
    prompt, stops = smollm.format_chat([{"role": "system", "content": "You always answer in one word."},
                                        {"role": "user", "content": "What is the capital of France?"}])
    assert prompt.startswith("<|im_start|>system\nYou always answer in one word.<|im_end|>") and stops == []
    assert prompt.endswith("<|im_start|>assistant\n")
    (c,) = smollm.generate(prompt, max_tokens=20, temperature=0)
    assert c.finish_reason == "stop" and "Paris" in c.text and "<|im_end|>" not in c.text


# --------------------------------------------------------------------------- silence


@pytest.mark.skipif(not HAVE_LLAMACPP, reason="xllamacpp not installed")
def test_llamacpp_prints_nothing(tmp_path):
    code = ("from middleware.models.loading import load_model\n"
            "m = load_model('local/smollm2-135m-instruct', progress=False)\n"
            "m.generate('Hi', max_tokens=3, temperature=0)\n"
            "m.option_logprobs(['Hi'], [[' there', ' you']])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SELFALIGN_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""


# --------------------------------------------------------------------------- through litellm


@pytest.mark.parametrize("runtime", [LLAMACPP, TRANSFORMERS])
def test_litellm_local_provider(litellm, runtime):
    model = f"local/{BASE_MODEL}?runtime={runtime}"
    messages = [{"role": "user", "content": "Count: 1, 2, 3,"}]
    resp = litellm.completion(model=model, messages=messages, temperature=0.8, seed=3, n=2, max_tokens=6)
    assert len(resp.choices) == 2 and resp.usage.completion_tokens <= 12
    greedy = litellm.completion(model=model, messages=messages, temperature=0, max_tokens=10, stop=["7"])
    text = greedy.choices[0].message.content
    assert text and "7" not in text
    chunks = litellm.completion(model=model, messages=messages, temperature=0, max_tokens=10, stop=["7"],
                                stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text


@pytest.mark.skipif(not HAVE_LLAMACPP, reason="xllamacpp not installed")
def test_abandoned_async_stream_stops_llamacpp(litellm, monkeypatch):
    import asyncio

    model = get_local_model(CHAT_MODEL, progress=False)
    server, tokens = model._server, []

    class Counting:  # counts the tokens llama.cpp streams
        listening_address = server.listening_address

        def handle_completions(self, body, callback=None):
            if callback is None:
                return server.handle_completions(body)
            return server.handle_completions(body, lambda ch: tokens.append(1) or callback(ch))

    monkeypatch.setattr(model, "_server", Counting())

    async def run():
        stream = await litellm.acompletion(model=f"local/{CHAT_MODEL}", stream=True, max_tokens=300,
                                           temperature=0.7, seed=1, messages=[{"role": "user", "content": "Tell a long story."}])
        async for _ in stream:
            break
        await stream.aclose()
        await asyncio.sleep(1.0)

    asyncio.run(run())
    assert 0 < len(tokens) < 60  # stopped long before the 300 tokens asked for


# --------------------------------------------------------------------------- agreement


@pytest.mark.slow
@pytest.mark.skipif(not (HAVE_LLAMACPP and HAVE_TORCH), reason="needs both runtimes")
@pytest.mark.parametrize("precision, max_dp, mean_dp", [(None, 0.08, 0.03), ("f16", 0.01, 0.003)],
                         ids=["as-stored", "f16"])
def test_runtimes_agree_on_option_probabilities(precision, max_dp, mean_dp):
    """Gemma's option probabilities on evaluator prompts: llama.cpp vs torch (the GGUF's weights
    de-quantised to float32).  As stored, llama.cpp also quantises activations to 8 bits; on the
    de-quantised f16 copy it does not, and the two runtimes agree almost exactly.
    benchmarks/embedded_model.py measures both at scale."""
    from middleware.eval import EvalConfig
    from middleware.eval.runner import _conditions, load_pair

    cfg = EvalConfig(model="local/gemma-3-270m", pairs=[("en", "USA")], strategies=["chrf"], mode="exact")
    pair = load_pair("en", "USA", limit=3)
    prompts = [c[-1] for probe in pair.probes for c in _conditions(pair, probe, cfg)]
    assert len(prompts) == 6

    def p_first(model):
        lm = get_local_model(model, progress=False)
        lps = lm.option_logprobs([p.text for p in prompts], [p.continuations() for p in prompts])
        return [1 / (1 + math.exp(b - a)) for a, b in lps]

    llamacpp = f"{BASE_MODEL}?runtime=llamacpp" + (f"&precision={precision}" if precision else "")
    a, b = p_first(llamacpp), p_first(f"{BASE_MODEL}?runtime=transformers")
    deltas = [abs(x - y) for x, y in zip(a, b)]
    assert max(deltas) < max_dp and sum(deltas) / len(deltas) < mean_dp, deltas
    # Same side of 1/2: the same answer would be read off both.
    assert [x > 0.5 for x in a] == [y > 0.5 for y in b]


@pytest.mark.parametrize("cores, decode, batch", [(1, 1, 1), (2, 1, 2), (16, 4, 8)])
def test_thread_defaults_split_decode_and_prompt(monkeypatch, cores, decode, batch):
    # Prompt evaluation splits across cores; decoding one token at a time does not.
    from middleware.models import llamacpp

    monkeypatch.delenv("SELFALIGN_THREADS", raising=False)
    monkeypatch.setattr(llamacpp, "_usable_cores", lambda: cores)
    assert (llamacpp.default_threads(), llamacpp.default_batch_threads()) == (decode, batch)
    monkeypatch.setenv("SELFALIGN_THREADS", "3")
    assert (llamacpp.default_threads(), llamacpp.default_batch_threads()) == (3, 3)
