"""wrap_openai: the real openai SDK clients, sync and async, talking to the scripted upstream."""

from __future__ import annotations

import openai
import pytest

import middleware
from fake_upstream import DEFAULT_REPLY
from middleware.errors import UnknownCountryError
from middleware.integrations.openai_client import AlignedClient, wrap_openai

USER = [{"role": "user", "content": "Do you think that homosexuality is ever justifiable?"}]


def sent_system(upstream) -> str | None:
    first = upstream.chat_requests[-1].body["messages"][0]
    return first["content"] if first["role"] == "system" else None


def test_sync_client(upstream):
    raw = openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0)
    client = wrap_openai(raw, country="ro", language="en", min_relevance=0)
    assert isinstance(client, AlignedClient) and client.wrapped is raw
    out = client.chat.completions.create(model="fake", messages=USER)
    assert out.choices[0].message.content == DEFAULT_REPLY
    assert "Romania" in sent_system(upstream) and sent_system(upstream).count("\n- ") == 5
    assert upstream.chat_requests[-1].body["messages"][1:] == USER
    assert USER == [{"role": "user", "content": USER[0]["content"]}]  # the caller's list is not changed


def test_everything_else_delegates(upstream):
    raw = openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0)
    client = wrap_openai(raw, country="ro", language="en")
    assert client.api_key == "k" and client.base_url == raw.base_url
    assert [m.id for m in client.models.list()] == ["fake"]
    assert client.chat.completions.create.__wrapped__ is not None


def test_streaming_raw_response_and_with_options(upstream):
    client = wrap_openai(openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0), country="usa")
    text = "".join(c.choices[0].delta.content or "" for c in
                   client.chat.completions.create(model="fake", messages=USER, stream=True) if c.choices)
    assert text == DEFAULT_REPLY and "United States" in sent_system(upstream)
    raw = client.chat.completions.with_raw_response.create(model="fake", messages=USER)
    assert raw.parse().choices[0].message.content == DEFAULT_REPLY
    assert "United States" in sent_system(upstream)
    derived = client.with_options(timeout=5)
    assert isinstance(derived, AlignedClient)
    derived.chat.completions.create(model="fake", messages=USER)
    assert "United States" in sent_system(upstream)


def test_per_call_override_and_off(upstream):
    client = wrap_openai(openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0), country="ro",
                         language="en", min_relevance=0)
    client.chat.completions.create(model="fake", messages=USER, selfalign={"country": "tr", "k": 2})
    assert "Romania" not in sent_system(upstream) and sent_system(upstream).count("\n- ") == 2
    client.chat.completions.create(model="fake", messages=USER, extra_body={"selfalign": {"country": "usa"}})
    assert "United States" in sent_system(upstream)
    assert "selfalign" not in upstream.chat_requests[-1].body
    client.chat.completions.create(model="fake", messages=USER, selfalign={"country": "none"})
    assert sent_system(upstream) is None
    off = wrap_openai(openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0), country="none")
    off.chat.completions.create(model="fake", messages=USER)
    assert sent_system(upstream) is None and off.aligner is None


async def test_async_client(upstream):
    client = wrap_openai(openai.AsyncOpenAI(base_url=upstream.url, api_key="k", max_retries=0), country="kor",
                         language="en")
    out = await client.chat.completions.create(model="fake", messages=USER)
    assert out.choices[0].message.content == DEFAULT_REPLY
    assert "Korea" in sent_system(upstream)
    stream = await client.chat.completions.create(model="fake", messages=USER, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == DEFAULT_REPLY
    async with client as same:
        assert same is client


def test_bad_settings_fail_at_wrap_time(upstream):
    raw = openai.OpenAI(base_url=upstream.url, api_key="k")
    with pytest.raises(UnknownCountryError):
        wrap_openai(raw, country="Atlantis")
    with pytest.raises(TypeError, match="unknown option"):
        wrap_openai(raw, country="ro", colour="red")
    with pytest.raises(TypeError):
        wrap_openai(object(), country="ro")


def test_exported_from_the_package():
    assert middleware.wrap_openai is wrap_openai


CODING = [{"role": "user", "content": "Write a Python function that sorts a list of numbers."}]


def test_the_decision_is_reported_on_the_result(upstream):
    client = wrap_openai(openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0), country="ro")
    out = client.chat.completions.create(model="fake", messages=CODING)
    assert upstream.chat_requests[-1].body["messages"] == CODING  # untouched
    assert out.selfalign["demonstrations"] == 0
    r = out.selfalign["relevance"]
    assert list(r) == ["inject", "score", "threshold", "reason"] and r["inject"] is False
    assert r["reason"] == "not about values" and r["score"] < r["threshold"]
    raw = client.chat.completions.with_raw_response.create(model="fake", messages=USER)
    assert raw.selfalign["relevance"]["inject"] is True and raw.selfalign["demonstrations"] >= 1
    assert raw.selfalign["demonstrations"] == sent_system(upstream).count("\n- ")
    stream = client.chat.completions.create(model="fake", messages=CODING, stream=True)
    assert stream.selfalign["demonstrations"] == 0
    list(stream)


async def test_the_async_client_reports_the_decision_too(upstream):
    client = wrap_openai(openai.AsyncOpenAI(base_url=upstream.url, api_key="k", max_retries=0), country="ro")
    out = await client.chat.completions.create(model="fake", messages=CODING, selfalign={"min_relevance": 0})
    assert out.selfalign["demonstrations"] == 5 and out.selfalign["relevance"]["inject"] is True
