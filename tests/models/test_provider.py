"""Tests for the litellm ``local/`` provider (middleware.models.provider)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import asyncio
import time

import pytest

from middleware.models.local_model import get_local_model
from middleware.models.provider import DEFAULT_MODEL, EVAL_MODEL, PROVIDER, import_litellm

from .test_local_model import build_tiny_model

MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Tell me a story."}]}]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """``local/<dir>`` name of a tiny random model, with EOS disabled."""
    path = build_tiny_model(tmp_path_factory.mktemp("tiny-provider"))
    get_local_model(str(path)).eos_token_ids = set()
    return f"{PROVIDER}/{path}"


def _content(resp) -> str:
    return resp.choices[0].message.content


def test_import_registers_once(litellm):
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    import_litellm()
    entries = [e for e in litellm.custom_provider_map if e["provider"] == PROVIDER]
    assert len(entries) == 1
    assert DEFAULT_MODEL == "local/smollm2-135m-instruct" and EVAL_MODEL == "local/gemma-3-270m"


def test_completion_openai_shape(litellm, tiny_model):
    resp = litellm.completion(model=tiny_model, messages=MESSAGES, temperature=0, max_tokens=7)
    d = resp.model_dump()
    assert d["object"] == "chat.completion" and d["id"]
    choice = d["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] == "length"
    u = d["usage"]
    assert u["completion_tokens"] == 7 and u["prompt_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    again = litellm.completion(model=tiny_model, messages=MESSAGES, temperature=0, max_tokens=7)
    assert _content(again) == choice["message"]["content"]


def test_completion_n_seed_stop(litellm, tiny_model):
    kw = dict(model=tiny_model, messages=MESSAGES, max_tokens=12, temperature=1.0, seed=5)
    a = litellm.completion(n=3, **kw)
    b = litellm.completion(n=3, **kw)
    assert len(a.choices) == 3 and [c.message.content for c in a.choices] == \
        [c.message.content for c in b.choices]
    full = _content(litellm.completion(model=tiny_model, messages=MESSAGES, temperature=0,
                                       max_tokens=30))
    stop = full.strip()[4:6]
    if not stop.strip():
        pytest.skip("degenerate output")
    cut = litellm.completion(model=tiny_model, messages=MESSAGES, temperature=0, max_tokens=30,
                             stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert _content(cut) == full[:full.find(stop)].strip()


def test_streaming_matches_completion(litellm, tiny_model):
    kw = dict(model=tiny_model, messages=MESSAGES, temperature=0, max_tokens=20)
    full = _content(litellm.completion(**kw))
    chunks = list(litellm.completion(stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices and
            c.choices[0].finish_reason] == ["length"]
    usage = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert usage and usage[-1].completion_tokens == 20


def test_acompletion_and_astream(litellm, tiny_model):
    kw = dict(model=tiny_model, messages=MESSAGES, temperature=0, max_tokens=15)
    full = _content(litellm.completion(**kw))

    async def run():
        resp = await litellm.acompletion(**kw)
        stream = await litellm.acompletion(stream=True, **kw)
        parts = [c.choices[0].delta.content or "" async for c in stream]
        return resp, parts

    resp, parts = asyncio.run(run())
    assert _content(resp) == full and resp.usage.completion_tokens == 15
    assert "".join(parts) == full and len([p for p in parts if p]) > 3


def _slow_down(model, seconds):
    real = model._forward

    def slow(**kw):
        time.sleep(seconds)
        return real(**kw)
    model._forward = slow
    return real


def test_async_does_not_block_event_loop(litellm, tiny_model):
    model = get_local_model(tiny_model.split("/", 1)[1])
    real = _slow_down(model, 0.01)

    async def run():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        t = asyncio.create_task(ticker())
        await litellm.acompletion(model=tiny_model, messages=MESSAGES, temperature=0,
                                  max_tokens=20)
        stream = await litellm.acompletion(model=tiny_model, messages=MESSAGES, temperature=0,
                                           max_tokens=20, stream=True)
        async for _ in stream:
            pass
        t.cancel()
        return ticks

    try:
        assert asyncio.run(run()) >= 20  # ~0.4 s of model time; a blocked loop ticks ~0
    finally:
        model._forward = real


def test_abandoned_async_stream_stops_generation(litellm, tiny_model):
    from middleware.models.provider import LocalLLM

    model = get_local_model(tiny_model.split("/", 1)[1])
    handler = next(e["custom_handler"] for e in litellm.custom_provider_map
                   if e["provider"] == PROVIDER)
    assert isinstance(handler, LocalLLM)
    real = _slow_down(model, 0.002)

    async def run():
        base = model.forward_passes
        agen = handler.astreaming(model=tiny_model.split("/", 1)[1], messages=MESSAGES,
                                  optional_params={"max_tokens": 400, "temperature": 0})
        await agen.__anext__()
        await agen.aclose()
        start = model.forward_passes
        await asyncio.sleep(0.3)
        return base, start, model.forward_passes

    try:
        base, start, end = asyncio.run(run())
    finally:
        model._forward = real
    # Stops within a step of aclose(), having run at most a few chunks ahead.
    assert end - start <= 2 and end - base < 30


def test_default_model_streams_through_litellm(litellm):
    stream = litellm.completion(model=DEFAULT_MODEL, messages=[
        {"role": "user", "content": "Name three colours."}], temperature=0, max_tokens=12,
        stream=True)
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(deltas) >= 3 and "".join(deltas).strip()
