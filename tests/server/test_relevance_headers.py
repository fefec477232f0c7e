"""The relevance decision over real HTTP: the openai client -> the proxy (default gate) -> a scripted upstream."""

from __future__ import annotations

import httpx
import openai
import pytest

from middleware.server import ServerConfig, ServerThread
from .test_server import client  # noqa: F401  (the same fixture, against this module's proxy)

CODING = [{"role": "user", "content": "Write a Python function that sorts a list of numbers."}]
VALUES = [{"role": "user", "content": "Do you think that euthanasia is ever justifiable?"}]


@pytest.fixture(scope="module")
def proxy(upstream):
    """The proxy with the default relevance decision (test_server.py's runs with min_relevance 0)."""
    config = ServerConfig(model="openai/fake", api_base=upstream.url, country="ro", port=0, log_level="warning")
    with ServerThread(config) as server:
        yield server


def test_coding_question_is_forwarded_untouched_with_the_reason(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="m", messages=CODING)
    assert raw.headers["x-selfalign-demonstrations"] == "0"
    assert raw.headers["x-selfalign-relevance"].startswith("not about values; score=")
    assert upstream.chat_requests[-1].body["messages"] == CODING


def test_values_question_gets_on_topic_statements(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="m", messages=VALUES)
    n = int(raw.headers["x-selfalign-demonstrations"])
    assert 1 <= n <= 5 and raw.headers["x-selfalign-relevance"].startswith("about values; score=")
    system = upstream.chat_requests[-1].body["messages"][0]
    assert system["role"] == "system" and "euthanasia" in system["content"].lower()


def test_streaming_reports_the_decision_too(client, upstream):
    with client.chat.completions.with_streaming_response.create(model="m", messages=CODING, stream=True) as r:
        assert r.headers["x-selfalign-demonstrations"] == "0"
        assert r.headers["x-selfalign-relevance"].startswith("not about values")
        list(r.iter_lines())


def test_min_relevance_zero_per_request_always_injects(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="m", messages=CODING,
                                                          extra_body={"selfalign": {"min_relevance": 0}})
    assert raw.headers["x-selfalign-demonstrations"] == "5"
    assert raw.headers["x-selfalign-relevance"].startswith("min_relevance is 0")


def test_preview_returns_the_decision(proxy):
    out = httpx.post(f"{proxy.url}/selfalign/demonstrations", json={"messages": CODING}).json()
    assert out["data"] == [] and out["system_message"] is None
    r = out["relevance"]
    assert set(r) == {"inject", "score", "threshold", "reason"} and r["inject"] is False
    assert r["score"] < r["threshold"] and r["reason"] == "not about values"
    follow_up = [{"role": "user", "content": "Do you think abortion is ever justifiable?"},
                 {"role": "assistant", "content": "Opinions differ."}, {"role": "user", "content": "Why?"}]
    got = httpx.post(f"{proxy.url}/selfalign/demonstrations", json={"messages": follow_up}).json()
    assert got["relevance"]["inject"] is True and got["data"][0]["probe_id"] == "Q184"
    off = httpx.post(f"{proxy.url}/selfalign/demonstrations", json={"messages": CODING, "model": "x@none"})
    assert off.json()["relevance"]["inject"] is False and "off" in off.headers["x-selfalign-relevance"]


def test_bad_min_relevance_is_a_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="m", messages=CODING, extra_body={"selfalign": {"min_relevance": 2}})
    assert "selfalign.min_relevance" in str(e.value)
