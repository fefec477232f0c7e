"""Errors, limits and upstream faults: OpenAI-shaped answers, the right status, never a hang."""

from __future__ import annotations

import socket
import time

import httpx
import openai
import pytest

from fake_upstream import Fault
from middleware.server import ServerConfig, ServerThread
from .server_testing import BODY, USER, assert_openai_error, make_config



def _config(upstream, **kw) -> ServerConfig:
    return make_config(upstream, **{"timeout": 1.0, **kw})


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    profile = tmp_path_factory.mktemp("profiles") / "mine.yaml"
    profile.write_text("statements:\n  - text: I believe family comes before work.\n")
    with ServerThread(_config(upstream, max_body_bytes=4096, profiles={"mine": profile})) as server:
        yield server


@pytest.fixture(scope="module")
def keyed(upstream):
    with ServerThread(_config(upstream, api_key="s3cret-key")) as server:
        yield server


def post(proxy, body=None, **kw) -> httpx.Response:
    kw.setdefault("timeout", 10)
    return httpx.post(f"{proxy.url}/chat/completions", json=body if body is not None else BODY, **kw)


# ------------------------------------------------------------------------------ bad requests


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b"\"text\"", b"{\"messages\": \"hi\"}",
                                     b"{\"messages\": [1]}", b"{\"messages\": [], \"stream\": \"yes\"}",
                                     b"{\"messages\": [], \"model\": 5}", b"\xff\xfe"])
def test_invalid_json_or_schema_is_400(proxy, content):
    r = httpx.post(f"{proxy.url}/chat/completions", content=content, headers={"content-type": "application/json"})
    assert_openai_error(r, 400)


def test_unknown_country_lists_valid_ones(proxy):
    err = assert_openai_error(post(proxy, {**BODY, "selfalign": {"country": "Atlantis"}}), 400)
    assert err["param"] == "country" and "ROU" in err["message"] and "USA" in err["message"]
    err = assert_openai_error(post(proxy, headers={"X-SelfAlign-Country": "zz"}), 400)
    assert "Atlantis" not in err["message"] and "e.g. ro" in err["message"]


def test_unknown_language_and_profile_list_valid_ones(proxy):
    err = assert_openai_error(post(proxy, {**BODY, "selfalign": {"language": "klingon"}}), 400)
    assert err["param"] == "language" and "en (English)" in err["message"]
    err = assert_openai_error(post(proxy, headers={"X-SelfAlign-Profile": "nope"}), 400)
    assert err["param"] == "profile" and "mine" in err["message"]


def test_registered_profile_by_name(proxy, upstream):
    r = post(proxy, {**BODY, "selfalign": {"profile": "mine"}})
    assert r.status_code == 200 and r.headers["x-selfalign-demonstrations"] == "1"
    assert "family comes before work" in upstream.chat_requests[-1].body["messages"][0]["content"]
    listed = httpx.get(f"{proxy.url}/selfalign/profiles").json()["data"]
    assert [p["id"] for p in listed] == ["mine"]


def test_profile_paths_are_not_accepted(proxy, tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("statements:\n  - text: secret\n")
    assert_openai_error(post(proxy, {**BODY, "selfalign": {"profile": str(path)}}), 400)


@pytest.mark.parametrize("options", [{"k": 0}, {"k": "5"}, {"k": 1000}, {"strategy": "best"}, {"colour": "x"},
                                     "ro", {"country": 7}])
def test_bad_selfalign_options(proxy, options):
    err = assert_openai_error(post(proxy, {**BODY, "selfalign": options}), 400)
    assert err["param"] and err["param"].startswith(("selfalign", "country"))


def test_404_405_and_validation_are_openai_shaped(proxy):
    base = proxy.url.removesuffix("/v1")
    assert assert_openai_error(httpx.get(f"{base}/v1/nothing"), 404)["code"] == "not_found"
    assert assert_openai_error(httpx.get(f"{proxy.url}/chat/completions"), 405)["code"] == "method_not_allowed"
    assert_openai_error(httpx.delete(f"{proxy.url}/models"), 405)


def test_body_over_the_limit_is_413(proxy):
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}
    assert assert_openai_error(post(proxy, big), 413)["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(10):
            yield b" " * 1000

    r = httpx.post(f"{proxy.url}/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert_openai_error(r, 413)


# ------------------------------------------------------------------------------------ auth


def test_api_key_required(keyed, upstream):
    assert assert_openai_error(post(keyed), 401)["code"] == "invalid_api_key"
    assert_openai_error(post(keyed, headers={"Authorization": "Bearer wrong"}), 401)
    assert_openai_error(post(keyed, headers={"Authorization": "Basic s3cret-key"}), 401)
    assert_openai_error(httpx.get(f"{keyed.url}/models"), 401)
    ok = openai.OpenAI(base_url=keyed.url, api_key="s3cret-key", max_retries=0)
    assert ok.chat.completions.create(model="m", messages=USER).choices[0].message.content
    assert "s3cret-key" not in str(upstream.chat_requests[-1].headers)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed.url, api_key="nope", max_retries=0).chat.completions.create(model="m",
                                                                                              messages=USER)
    # Health checks stay open for orchestrators.
    assert httpx.get(keyed.url.removesuffix("/v1") + "/health/liveness").status_code == 200


def test_refuses_public_bind_without_key():
    from middleware.server import ConfigError

    with pytest.raises(ConfigError, match="without an API key"):
        ServerConfig(host="0.0.0.0").check_bind()
    ServerConfig(host="0.0.0.0", api_key="k").check_bind()
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        ServerConfig(host=host).check_bind()


# ------------------------------------------------------------------------------ upstream faults


def test_upstream_429_keeps_retry_after(proxy, upstream):
    upstream.fail_next(Fault(status=429, retry_after=7))
    r = post(proxy)
    assert assert_openai_error(r, 429)["type"] == "rate_limit_error"
    assert r.headers["retry-after"] == "7"
    upstream.fail_next(Fault(status=429, retry_after=3))
    with pytest.raises(openai.RateLimitError) as e:
        openai.OpenAI(base_url=proxy.url, api_key="x", max_retries=0).chat.completions.create(
            model="m", messages=USER, stream=True)
    assert e.value.response.headers["retry-after"] == "3"


@pytest.mark.parametrize("status", [500, 503])
def test_upstream_5xx_is_502(proxy, upstream, status):
    upstream.fail_next(Fault(status=status))
    assert assert_openai_error(post(proxy), 502)["type"] == "upstream_error"
    upstream.fail_next(Fault(status=status))
    assert_openai_error(post(proxy, {**BODY, "stream": True}), 502)


def test_upstream_4xx_is_passed_on(proxy):
    err = assert_openai_error(post(proxy, {**BODY, "n": 99}), 400)
    assert "n must be" in err["message"]


def test_upstream_unreachable_is_502():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    config = ServerConfig(model="openai/fake", api_base=f"http://127.0.0.1:{port}/v1", country="ro", language="en",
                          port=0, log_level="error")
    with ServerThread(config) as server:
        assert_openai_error(post(server), 502)
        assert_openai_error(post(server, {**BODY, "stream": True}), 502)


def test_upstream_timeout_is_504(proxy, upstream):
    upstream.fail_next(Fault(hang=3))
    started = time.monotonic()
    assert assert_openai_error(post(proxy), 504)["type"] == "timeout_error"
    assert time.monotonic() - started < 2.5
    upstream.fail_next(Fault(hang=3))
    assert_openai_error(post(proxy, {**BODY, "stream": True}), 504)


def test_dropped_stream_ends_with_an_error_event(proxy, upstream):
    upstream.fail_next(Fault(drop_after=3))
    with httpx.stream("POST", f"{proxy.url}/chat/completions", json={**BODY, "stream": True}, timeout=5) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert r.status_code == 200
    assert len(events) == 4 and '"error"' in events[-1] and "[DONE]" not in events[-1]
    upstream.fail_next(Fault(drop_after=2))
    client = openai.OpenAI(base_url=proxy.url, api_key="x", max_retries=0, timeout=5)
    with pytest.raises(openai.APIError, match="upstream"):
        for _ in client.chat.completions.create(model="m", messages=USER, stream=True):
            pass


def test_stalled_stream_times_out_with_an_error_event(proxy, upstream):
    upstream.fail_next(Fault(chunk_delay=1.6))  # longer than the proxy's 1 s read timeout
    started = time.monotonic()
    with httpx.stream("POST", f"{proxy.url}/chat/completions", json={**BODY, "stream": True}, timeout=10) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert time.monotonic() - started < 5
    assert "timeout" in events[-1]


def test_slow_stream_completes(proxy, upstream):
    upstream.fail_next(Fault(chunk_delay=0.05))
    client = openai.OpenAI(base_url=proxy.url, api_key="x", max_retries=0, timeout=10)
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"


def _wait_for(predicate, seconds=3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_client_disconnect_cancels_streaming_upstream(proxy, upstream):
    upstream.fail_next(Fault(chunk_delay=0.3))
    with httpx.stream("POST", f"{proxy.url}/chat/completions", json={**BODY, "stream": True}, timeout=5) as r:
        next(r.iter_raw())
    assert _wait_for(lambda: upstream.cancelled == 1), "the upstream stream was not closed"


def test_client_disconnect_cancels_pending_upstream_call(upstream):
    # A proxy whose own upstream timeout (30 s) cannot be what ends the call.
    with ServerThread(_config(upstream, timeout=30, log_level="error")) as patient:
        upstream.fail_next(Fault(hang=5))  # the upstream would answer after 5 s: it must hear of the hang-up first
        with pytest.raises(httpx.ReadTimeout):
            post(patient, timeout=0.2)
        assert _wait_for(lambda: upstream.cancelled == 1, 4), "the upstream request was not cancelled"


def test_text_completions_for_a_hosted_model_say_where_to_send_them(proxy):
    r = httpx.post(f"{proxy.url}/completions", json={"model": "m", "prompt": "Hello", "max_tokens": 2})
    err = assert_openai_error(r, 400)
    assert err["param"] == "model" and "embedded models only" in err["message"]
