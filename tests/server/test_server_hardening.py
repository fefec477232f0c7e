"""Hardening (issue 13): what the proxy refuses, and how it survives hostile clients and broken upstreams.

Real HTTP on loopback throughout; the openai SDK as the client where a client is involved;
the scripted fake upstream (tests/fake_upstream.py) for the faulty upstreams.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from fake_upstream import Fault
from processes import free_port, wait_ready
from middleware.server import ServerConfig, ServerThread
from .server_testing import BODY, USER, assert_openai_error, make_config, sdk

CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'selfalign'; from middleware.cli import main; main()"]


@pytest.fixture(scope="module")
def proxy(upstream):
    with ServerThread(make_config(upstream)) as server:
        yield server


def raw_http(port: int, request: bytes, pause_after: int | None = None, pause: float = 0.0,
             timeout: float = 10) -> tuple[int, dict, bytes, float]:
    """Send bytes over a socket (optionally stalling after ``pause_after`` of them); status, headers, body, seconds."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if pause_after is None:
            s.sendall(request)
        else:
            s.sendall(request[:pause_after])
            readable, _, _ = select.select([s], [], [], pause)  # an answer may come while we stall
            if not readable:
                s.sendall(request[pause_after:])
        data = b""
        while True:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            data += part
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
                if len(body) >= int(headers.get("content-length", 1 << 30)):
                    break
    elapsed = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body, elapsed


# ------------------------------------------------------------------ 1. cross-site requests


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None])
def test_non_json_bodies_are_415(proxy, upstream, ctype):
    headers = {"content-type": ctype} if ctype else {}
    content = json.dumps(BODY).encode()
    # httpx adds no Content-Type for raw content: the "no type" case is a Blob body from fetch().
    r = httpx.post(f"{proxy.url}/chat/completions", content=content, headers=headers)
    err = assert_openai_error(r, 415)
    assert err["code"] == "unsupported_media_type" and "application/json" in err["message"]
    assert upstream.chat_requests == []
    ok = httpx.post(f"{proxy.url}/chat/completions", content=content,
                    headers={"content-type": "Application/JSON; charset=utf-8"})
    assert ok.status_code == 200


def test_foreign_host_is_refused(proxy, upstream):
    # A DNS-rebinding page reaches 127.0.0.1 under its own name, which arrives as the Host header.
    client = sdk(proxy, default_headers={"Host": f"attacker.example:{proxy.port}"})
    with pytest.raises(openai.PermissionDeniedError, match="--allowed-host"):
        client.chat.completions.create(model="m", messages=USER)
    assert upstream.chat_requests == []
    for host in (f"localhost:{proxy.port}", f"127.0.0.1:{proxy.port}", "127.0.0.1", f"[::1]:{proxy.port}"):
        assert sdk(proxy, default_headers={"Host": host}).chat.completions.create(model="m", messages=USER).choices


def test_allowed_host_option(upstream):
    with ServerThread(make_config(upstream, allowed_hosts=("proxy.internal",))) as server:
        good = sdk(server, default_headers={"Host": f"Proxy.Internal:{server.port}"})
        assert good.chat.completions.create(model="m", messages=USER).choices
        with pytest.raises(openai.PermissionDeniedError):
            sdk(server, default_headers={"Host": "other.internal"}).models.list()


def test_foreign_origin_is_refused(proxy, upstream):
    client = sdk(proxy, default_headers={"Origin": "https://evil.example"})
    with pytest.raises(openai.PermissionDeniedError, match="--cors-origin") as e:
        client.chat.completions.create(model="m", messages=USER)
    assert e.value.code == "origin_not_allowed"
    # the preflight a browser sends first is refused too, and no CORS header invites the page
    pre = httpx.options(f"{proxy.url}/chat/completions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert_openai_error(pre, 403)
    assert "access-control-allow-origin" not in pre.headers
    assert upstream.chat_requests == []
    # same-origin (e.g. the /docs page served by the proxy itself) stays allowed
    same = sdk(proxy, default_headers={"Origin": f"http://127.0.0.1:{proxy.port}"})
    assert same.chat.completions.create(model="m", messages=USER).choices


def test_cors_origin_option_serves_cors(upstream):
    app_origin = "https://app.example"
    with ServerThread(make_config(upstream, cors_origins=(app_origin,))) as server:
        pre = httpx.options(f"{server.url}/chat/completions", headers={
            "Origin": app_origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == app_origin
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        raw = sdk(server, default_headers={"Origin": app_origin}).chat.completions.with_raw_response.create(
            model="m", messages=USER)
        assert raw.headers["access-control-allow-origin"] == app_origin
        assert "x-selfalign-demonstrations" in raw.headers["access-control-expose-headers"].lower()
        with pytest.raises(openai.PermissionDeniedError):
            sdk(server, default_headers={"Origin": "https://evil.example"}).models.list()


def test_wildcards_need_an_api_key():
    from middleware.server import ConfigError

    for field in ("cors_origins", "allowed_hosts"):
        with pytest.raises(ConfigError, match="needs an API key"):
            ServerConfig(**{field: ("*",)}).check_bind()
        config = ServerConfig(api_key="k", **{field: ["*"]})  # a list, as from a config file
        config.check_bind()
        assert getattr(config, field) == ("*",)
    out = run_cli("--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1", "--cors-origin", "*")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "cors_origins '*' needs an API key" in out.stderr


# ------------------------------------------------------------------------ 2. deep nesting


def test_deep_nesting_is_400_with_a_one_line_log(proxy, upstream, caplog):
    caplog.set_level(logging.INFO)
    nest = b"[" * 490 + b"]" * 490  # ~1 KB; copying the messages used to recurse past Python's limit: a 500
    for body in (b'{"model":"m","messages":[{"role":"user","content":' + nest + b"}]}",
                 b'{"model":"m","messages":[{"role":"user","content":"hi"}],"extra":' + nest + b"}"):
        assert len(body) < 1100
        r = httpx.post(f"{proxy.url}/chat/completions", content=body, headers={"content-type": "application/json"})
        err = assert_openai_error(r, 400)
        assert "64 levels" in err["message"]
    logged = [r.getMessage() for r in caplog.records if r.name.startswith(("selfalign", "uvicorn"))]
    assert len(logged) <= 2 and all(len(line) < 300 and "\n" not in line for line in logged), logged
    assert not any(r.exc_info for r in caplog.records)
    assert upstream.chat_requests == []
    # realistic nesting (a tool schema 20 objects deep) is untouched
    schema = json.loads('{"type": "object", "properties": {"a": ' * 20 + '{"type": "string"}' + "}}" * 20)
    fine = {**BODY, "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}
    assert httpx.post(f"{proxy.url}/chat/completions", json=fine).status_code == 200
    assert upstream.chat_requests[-1].body["tools"][0]["function"]["parameters"] == schema


# ---------------------------------------------------------------- 3. streams cut mid-event


def test_stream_cut_mid_event_gives_the_sdk_an_api_error(proxy, upstream):
    upstream.fail_next(Fault(drop_after=2, partial=True))
    chunks = []
    with pytest.raises(openai.APIError, match="upstream") as e:
        for chunk in sdk(proxy).chat.completions.create(model="m", messages=USER, stream=True):
            chunks.append(chunk)
    assert not isinstance(e.value, openai.APIStatusError)  # an error event inside the 200 stream
    assert len(chunks) == 2  # the whole events before the cut still arrived
    upstream.fail_next(Fault(drop_after=2, partial=True))
    with httpx.stream("POST", f"{proxy.url}/chat/completions", json={**BODY, "stream": True}, timeout=5) as r:
        events = r.read().split(b"\n\n")
    assert events[-1] == b"" and b'"error"' in events[-2] and events[-2].startswith(b"data: {\"error\"")


@pytest.mark.parametrize("content_type", ["text/html", None, "text/event-stream"])
def test_non_sse_200_body_gives_the_sdk_an_api_error(proxy, upstream, content_type):
    upstream.fail_next(Fault(body=b"<html><body>Gateway says hi</body></html>", content_type=content_type))
    with pytest.raises(openai.APIError, match="upstream"):
        for _ in sdk(proxy).chat.completions.create(model="m", messages=USER, stream=True):
            pass


# --------------------------------------------------------------------------- 5. deadlines


@pytest.mark.parametrize("forward", ["auto", "litellm"])
def test_trickling_upstream_hits_the_total_deadline(upstream, forward):
    # One byte every 0.3 s never trips a per-read timeout of 1 s; the 2 s total deadline must.
    with ServerThread(make_config(upstream, timeout=2.0, forward=forward)) as server:
        upstream.fail_next(Fault(trickle=0.3))
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as e:
            sdk(server, timeout=20).chat.completions.create(model="m", messages=USER)
        assert e.value.status_code == 504 and "--timeout" in str(e.value)
        assert time.monotonic() - started < 4


@pytest.mark.parametrize("forward", ["auto", "litellm"])
def test_trickling_stream_hits_the_idle_deadline(upstream, forward):
    with ServerThread(make_config(upstream, timeout=30.0, stream_idle_timeout=1.0, forward=forward)) as server:
        upstream.fail_next(Fault(trickle=0.2))  # the first event at once, then a byte every 0.2 s
        started, chunks = time.monotonic(), []
        with pytest.raises(openai.APIError, match="stream-idle-timeout"):
            for chunk in sdk(server, timeout=20).chat.completions.create(model="m", messages=USER, stream=True):
                chunks.append(chunk)
        assert len(chunks) == 1 and time.monotonic() - started < 4


# --------------------------------------------------------------------------- 6. redirects


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_redirects_are_not_followed(proxy, upstream, status, stream):
    target = upstream.url + "/chat/completions?redirected=1"
    upstream.fail_next(Fault(status=status, location=target))
    r = httpx.post(f"{proxy.url}/chat/completions", json={**BODY, "stream": stream}, timeout=10)
    err = assert_openai_error(r, 502)
    assert err["code"] == "upstream_redirect" and str(status) in err["message"] and target in err["message"]
    assert [req.path for req in upstream.requests] == ["/v1/chat/completions"]  # nothing went to the Location


# ------------------------------------------------------------------------- 7. big integers


def test_big_integers_pass_through_untouched(proxy, upstream):
    big, small = 18446744073709551616, -9223372036854775809
    sdk(proxy).chat.completions.create(model="m", messages=USER, seed=big, extra_body={"vendor": {"n": small}})
    sent = upstream.chat_requests[-1].body
    assert sent["seed"] == big and type(sent["seed"]) is int
    assert sent["vendor"]["n"] == small and type(sent["vendor"]["n"]) is int
    # and NaN is still refused, as without the big-integer path
    r = httpx.post(f"{proxy.url}/chat/completions", content=b'{"model":"m","messages":[],"seed":'
                   b'18446744073709551616,"temperature":NaN}', headers={"content-type": "application/json"})
    assert_openai_error(r, 400)


# ------------------------------------------------------------------------ 9. slow bodies


def test_slow_body_is_408(upstream):
    with ServerThread(make_config(upstream, body_timeout=0.5)) as server:
        body = json.dumps(BODY).encode()
        request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        status, headers, payload, elapsed = raw_http(server.port, request, pause_after=len(request) - 10, pause=3)
        assert status == 408 and elapsed < 2.5
        err = json.loads(payload)["error"]
        assert err["code"] == "request_timeout" and "--body-timeout" in err["message"]
        assert headers.get("connection") == "close"
        assert upstream.chat_requests == []
        # a body that arrives in time is not affected
        assert raw_http(server.port, request, pause_after=len(request) - 10, pause=0.1)[0] == 200


# ----------------------------------------------------------------------- 10. small things


@pytest.mark.parametrize("length", [b"abc", b"-1", b"99999999999999999999999", b"10, 11"])
def test_malformed_content_length_is_openai_shaped(proxy, length):
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + length + b"\r\n\r\n{}")
    status, headers, payload, _ = raw_http(proxy.port, request)
    assert status == 400 and headers["content-type"] == "application/json"
    err = json.loads(payload)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == "malformed_request" and "Content-Length" in err["message"]


def test_unknown_profile_without_profiles_reads_well(proxy):
    err = assert_openai_error(httpx.post(f"{proxy.url}/chat/completions", json={**BODY, "selfalign": {
        "profile": "nope"}}), 400)
    assert err["message"] == "unknown profile 'nope': no profiles are registered (see selfalign serve --config)"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "SELFALIGN_API_KEY"}
    return subprocess.run([*CLI, "serve", *args], capture_output=True, text=True, timeout=60,
                          env={**base, **(env or {})})


def test_help_keeps_the_defaults():
    out = run_cli("--help", env={"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"})
    for default in ("[default: 127.0.0.1]", "[default: 8000]", "[default: 1 MiB]", "[default: 600]",
                    "[default: 30]", "[default: 1]", "[default: info]"):
        assert default in out.stdout, default
    for option in ("--timeout", "--stream-idle-timeout", "--body-timeout", "--allowed-host", "--cors-origin"):
        assert option in out.stdout


@pytest.mark.parametrize("how", ["option", "env"])
def test_blank_api_key_is_a_one_line_error(how):
    args = ["--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]
    out = run_cli(*args, "--api-key", "   ") if how == "option" else run_cli(*args, env={"SELFALIGN_API_KEY": " "})
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith("selfalign: error: --api-key") and "whitespace" in out.stderr


# ----------------------------------------------------------------- 8. secrets with workers


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(next(line for line in (entry / "status").read_text().splitlines()
                                if line.startswith("PPid:")).split()[1])
            except (OSError, StopIteration):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
def test_worker_processes_hold_no_keys(upstream, tmp_path):
    proxy_key, upstream_key = "proxy-key-4b1d9e", "sk-upstream-77c0aa"
    (tmp_path / "c.yaml").write_text(f"upstream_api_key: {upstream_key}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SELFALIGN_API_KEY"}
    proc = subprocess.Popen([*CLI, "serve", "--model", "openai/fake", "--api-base", upstream.url, "--country", "usa",
                             "--port", str(port), "--workers", "2", "--log-level", "warning", "--config",
                             str(tmp_path / "c.yaml")], env={**env, "SELFALIGN_API_KEY": proxy_key},
                            stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/readiness", proc, 90)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=proxy_key, max_retries=0)
        assert client.chat.completions.create(model="m", messages=USER).choices
        assert upstream.chat_requests[-1].headers["authorization"] == f"Bearer {upstream_key}"
        workers = [p for p in _descendants(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2, workers
        settings_files = set()
        for pid in workers:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert proxy_key.encode() not in environ and upstream_key.encode() not in environ
            variables = dict(v.split(b"=", 1) for v in environ.split(b"\0") if b"=" in v)
            settings_files.add(variables[b"SELFALIGN_SERVER_CONFIG_FILE"].decode())
        (path,) = settings_files
        assert os.stat(path).st_mode & 0o777 == 0o600
    finally:
        proc.terminate()
        proc.wait(20)
    assert not os.path.exists(path), "the settings file outlived the server"
