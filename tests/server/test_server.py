"""The proxy end to end: the real openai SDK -> selfalign (uvicorn thread) -> scripted upstream, all on loopback."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from fake_upstream import DEFAULT_REPLY
from middleware.server import ServerConfig, ServerThread

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
QUESTION = "Should women have the same right to a job as men when jobs are scarce?"
USER = [{"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def proxy(upstream):
    # min_relevance 0: always k demonstrations (the gate has tests of its own, test_relevance_headers.py)
    config = ServerConfig(model="openai/fake", api_base=upstream.url, country="ro", language="en", port=0,
                          log_level="warning", min_relevance=0)
    with ServerThread(config) as server:
        yield server


@pytest.fixture()
def client(proxy):
    return openai.OpenAI(base_url=proxy.url, api_key="unused", max_retries=0, timeout=10)


def system_text(recorded) -> str:
    first = recorded.body["messages"][0]
    assert first["role"] == "system"
    return first["content"]


def demo_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("- ")]


# ----------------------------------------------------------------------------- happy paths


def test_non_streaming_injects_five_demonstrations(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="anything", messages=USER)
    completion = raw.parse()
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert raw.headers["x-selfalign-demonstrations"] == "5"
    sent = upstream.chat_requests[-1]
    text = system_text(sent)
    assert "people in Romania" in text and len(demo_lines(text)) == 5
    assert sent.body["messages"][1:] == USER
    assert sent.body["model"] == "fake"
    assert "authorization" not in sent.headers  # no upstream key configured; the client's key is not forwarded


def test_streaming_relays_chunks_and_ends(client, upstream):
    with client.chat.completions.with_streaming_response.create(model="m", messages=USER, stream=True) as raw:
        assert raw.headers["x-selfalign-demonstrations"] == "5"
        assert raw.headers["content-type"].startswith("text/event-stream")
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == DEFAULT_REPLY
    assert len(demo_lines(system_text(upstream.chat_requests[-1]))) == 5


def test_stream_ends_with_done(proxy):
    body = {"model": "m", "messages": USER, "stream": True}
    with httpx.stream("POST", f"{proxy.url}/chat/completions", json=body, timeout=10) as r:
        payload = r.read().decode()
    assert r.status_code == 200
    assert payload.rstrip().endswith("data: [DONE]")


def test_existing_system_message_is_extended(client, upstream):
    messages = [{"role": "system", "content": "You are terse."}] + USER
    client.chat.completions.create(model="m", messages=messages)
    sent = upstream.chat_requests[-1].body["messages"]
    assert len(sent) == 2 and sent[0]["content"].endswith("\n\nYou are terse.")


def test_every_other_parameter_passes_untouched(client, upstream):
    params = dict(tools=TOOLS, tool_choice="auto", temperature=0.3, top_p=0.9, n=2, logprobs=True, top_logprobs=2,
                  seed=7, max_tokens=33, stop=["\n\n"], response_format={"type": "text"}, user="u-1",
                  presence_penalty=0.1, frequency_penalty=0.2, logit_bias={"50256": -100}, parallel_tool_calls=False)
    completion = client.chat.completions.create(model="m", messages=USER, **params,
                                                extra_body={"custom_vendor_flag": {"x": [1, 2]}})
    sent = upstream.chat_requests[-1].body
    for name, value in params.items():
        assert sent[name] == value, name
    assert sent["custom_vendor_flag"] == {"x": [1, 2]}
    assert len(completion.choices) == 2
    call = completion.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name) == ("call_fake_0", "get_weather")


def test_streamed_tool_calls_keep_ids_and_names(client, upstream):
    stream = client.chat.completions.create(model="m", messages=USER, tools=TOOLS, stream=True,
                                            stream_options={"include_usage": True})
    calls, arguments, usage, finish = [], "", None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                if tc.id:
                    calls.append((tc.id, tc.function.name))
                arguments += tc.function.arguments or ""
    assert calls == [("call_fake_0", "get_weather")]
    assert json.loads(arguments) == {"city": "Bucharest"}
    assert finish == "tool_calls" and usage is not None
    assert upstream.chat_requests[-1].body["tools"] == TOOLS


def test_content_parts_are_understood(client, upstream):
    messages = [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
    raw = client.chat.completions.with_raw_response.create(model="m", messages=messages)
    assert raw.headers["x-selfalign-demonstrations"] == "5"
    assert upstream.chat_requests[-1].body["messages"][1] == messages[0]


# ----------------------------------------------------------------------- choosing the country


def test_country_from_extra_body_is_stripped(client, upstream):
    client.chat.completions.create(model="m", messages=USER, extra_body={"selfalign": {"country": "tr", "k": 2}})
    sent = upstream.chat_requests[-1].body
    assert "selfalign" not in sent
    text = system_text(upstream.chat_requests[-1])
    assert "people in Türkiye" in text or "Turkey" in text
    assert len(demo_lines(text)) == 2


def test_country_from_header(client, upstream):
    client.chat.completions.create(model="m", messages=USER, extra_headers={"X-SelfAlign-Country": "KOR"})
    assert "Korea" in system_text(upstream.chat_requests[-1])


def test_country_from_model_suffix(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="whatever@USA", messages=USER)
    assert raw.headers["x-selfalign-demonstrations"] == "5"
    sent = upstream.chat_requests[-1].body
    assert sent["model"] == "fake"
    assert "United States" in system_text(upstream.chat_requests[-1])


def test_precedence_body_then_header_then_suffix(client, upstream):
    headers = {"X-SelfAlign-Country": "KOR"}
    client.chat.completions.create(model="m@USA", messages=USER, extra_headers=headers,
                                   extra_body={"selfalign": {"country": "tr"}})
    assert "Korea" not in system_text(upstream.chat_requests[-1])
    client.chat.completions.create(model="m@USA", messages=USER, extra_headers=headers)
    assert "Korea" in system_text(upstream.chat_requests[-1])
    client.chat.completions.create(model="m@USA", messages=USER)
    assert "United States" in system_text(upstream.chat_requests[-1])


def test_country_none_turns_injection_off(client, upstream):
    for kwargs in ({"extra_body": {"selfalign": {"country": "none"}}},
                   {"extra_headers": {"X-SelfAlign-Country": "none"}}, {"model": "m@none"}):
        kwargs.setdefault("model", "m")
        raw = client.chat.completions.with_raw_response.create(messages=USER, **kwargs)
        assert raw.headers["x-selfalign-demonstrations"] == "0"
        assert upstream.chat_requests[-1].body["messages"] == USER


def test_language_header(client, upstream):
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Apakah agama penting?"}],
                                   extra_headers={"X-SelfAlign-Country": "idn", "X-SelfAlign-Language": "id"})
    assert len(demo_lines(system_text(upstream.chat_requests[-1]))) == 5


def test_vertex_style_version_suffix_is_not_a_country(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="claude-3-5-sonnet@20240620", messages=USER)
    assert raw.headers["x-selfalign-demonstrations"] == "5"  # the server default, Romania
    assert "Romania" in system_text(upstream.chat_requests[-1])


@pytest.mark.parametrize("model,expected", [
    ("gpt-4o@ro", ("gpt-4o", "ro")), ("openai/gpt-4o-mini@South Korea", ("openai/gpt-4o-mini", "South Korea")),
    ("claude-3-5-sonnet@20240620", ("claude-3-5-sonnet@20240620", None)), ("gemini@001", ("gemini@001", None)),
    ("@ro", ("@ro", None)), ("plain", ("plain", None)), ("m@none", ("m", "none"))])
def test_split_model_suffix(model, expected):
    from middleware.server.routing import split_model_suffix

    assert split_model_suffix(model) == expected


# --------------------------------------------------------------------------- other endpoints


def test_models_and_health(client, proxy):
    assert [m.id for m in client.models.list()] == ["openai/fake"]
    assert client.models.retrieve("openai/fake").id == "openai/fake"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5")
    base = proxy.url.removesuffix("/v1")
    assert httpx.get(f"{base}/health/liveness").json() == {"status": "alive"}
    ready = httpx.get(f"{base}/health/readiness")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_demonstrations_preview(proxy):
    r = httpx.post(f"{proxy.url}/selfalign/demonstrations",
                   json={"text": QUESTION, "selfalign": {"country": "usa", "k": 3}})
    assert r.status_code == 200 and r.headers["x-selfalign-demonstrations"] == "3"
    out = r.json()
    assert out["country"] == "USA" and out["language"] == "en" and len(out["data"]) == 3
    assert set(out["data"][0]) == {"text", "score", "probe_id", "category", "language"}
    assert out["system_message"].count("\n- ") == 3
    off = httpx.post(f"{proxy.url}/selfalign/demonstrations", json={"messages": USER, "model": "x@none"}).json()
    assert off["enabled"] is False and off["data"] == []


def test_profiles_listing(proxy):
    out = httpx.get(f"{proxy.url}/selfalign/profiles").json()
    assert out["object"] == "list" and out["default"]["country"] == "ROU"
    assert "USA" in out["countries"] and "en" in out["languages"]


def test_openapi_documents_the_endpoints(proxy):
    spec = httpx.get(proxy.url.removesuffix("/v1") + "/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models", "/v1/selfalign/demonstrations", "/v1/selfalign/profiles",
            "/health/liveness", "/health/readiness"} <= set(spec["paths"])
    body = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "selfalign" in body["properties"]


def test_language_auto_is_reported_in_a_response_header(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "Kann eine Abtreibung gerechtfertigt sein?"}],
        extra_headers={"X-SelfAlign-Language": "auto"})
    assert raw.headers["x-selfalign-language"] == "de"
    assert "Abtreibung" in system_text(upstream.chat_requests[-1])
    fixed = client.chat.completions.with_raw_response.create(model="m", messages=USER)
    assert fixed.headers["x-selfalign-language"] == "en"  # the server's configured language wins
