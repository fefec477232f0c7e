"""The litellm.acompletion forwarder (used for every non-OpenAI provider), forced onto the scripted upstream."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from fake_upstream import DEFAULT_REPLY, Fault
from middleware.server import ServerConfig, ServerThread

USER = [{"role": "user", "content": "How important is religion in your life?"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def proxy(upstream):
    config = ServerConfig(model="openai/fake", api_base=upstream.url, country="usa", port=0, log_level="warning",
                          forward="litellm", timeout=1.0)
    with ServerThread(config) as server:
        yield server


@pytest.fixture()
def client(proxy):
    return openai.OpenAI(base_url=proxy.url, api_key="x", max_retries=0, timeout=10)


def test_non_streaming(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="m", messages=USER, temperature=0.2,
                                                           extra_body={"selfalign": {"k": 3, "min_relevance": 0}, "vendor_x": 1})
    assert raw.parse().choices[0].message.content == DEFAULT_REPLY
    assert raw.headers["x-selfalign-demonstrations"] == "3"
    sent = upstream.chat_requests[-1].body
    assert sent["messages"][0]["role"] == "system" and "United States" in sent["messages"][0]["content"]
    assert sent["temperature"] == 0.2 and sent["vendor_x"] == 1 and "selfalign" not in sent


def test_streaming_with_tool_calls(client, upstream):
    calls, arguments = [], ""
    for chunk in client.chat.completions.create(model="m", messages=USER, tools=TOOLS, stream=True):
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                if tc.id:
                    calls.append((tc.id, tc.function.name))
                arguments += tc.function.arguments or ""
    assert calls == [("call_fake_0", "get_weather")]
    assert json.loads(arguments) == {"city": "Bucharest"}


def test_body_fields_cannot_steer_litellm(proxy, upstream):
    body = {"model": "m", "messages": USER, "api_base": "http://127.0.0.1:9/v1", "mock_response": "pwned"}
    r = httpx.post(f"{proxy.url}/chat/completions", json=body, timeout=10)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == DEFAULT_REPLY
    assert upstream.chat_requests[-1].body["api_base"] == "http://127.0.0.1:9/v1"  # sent on as data, not obeyed


@pytest.mark.parametrize("fault,status", [(Fault(status=429, retry_after=9), 429), (Fault(status=500), 502),
                                          (Fault(hang=3), 504)])
def test_upstream_failures(proxy, upstream, fault, status):
    for stream in (False, True):
        upstream.fail_next(fault)
        r = httpx.post(f"{proxy.url}/chat/completions", json={"model": "m", "messages": USER, "stream": stream},
                       timeout=10)
        assert r.status_code == status, r.text
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        if status == 429:
            assert r.headers["retry-after"] == "9"


def test_dropped_stream_ends_with_an_error_event(proxy, upstream):
    upstream.fail_next(Fault(drop_after=4))
    with httpx.stream("POST", f"{proxy.url}/chat/completions",
                      json={"model": "m", "messages": USER, "stream": True}, timeout=10) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert r.status_code == 200 and len(events) >= 2
    assert '"error"' in events[-1] and not any("[DONE]" in e for e in events)
