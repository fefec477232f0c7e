"""`selfalign serve`, the config file, model routing and what gets logged."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import httpx
import openai
import pytest

from fake_upstream import FakeUpstream
from processes import free_port, wait_ready
from middleware.errors import ConfigError
from middleware.server import ServerConfig, ServerThread, load_config

SECRET = "my-private-question-about-tax-fraud"
USER = [{"role": "user", "content": f"Is cheating on taxes justifiable? {SECRET}"}]
CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'selfalign'; from middleware.cli import main; main()"]


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as up:
        yield up


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SELFALIGN_API_KEY"}
    return subprocess.run([*CLI, "serve", *args], capture_output=True, text=True, timeout=60, env=env)


def test_cli_refuses_public_bind_without_key():
    out = run_cli("--host", "0.0.0.0", "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith("selfalign: error: refusing to listen on 0.0.0.0 without an API key")


def test_cli_unknown_default_country_is_one_line():
    out = run_cli("--country", "Atlantis", "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "unknown country 'Atlantis'" in out.stderr


def test_cli_help_lists_the_options():
    out = subprocess.run([*CLI, "serve", "--help"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    for option in ("--model", "--api-base", "--country", "--host", "--port", "--api-key", "--config",
                   "--max-body-bytes", "--log-content"):
        assert option in out.stdout


def write_config(tmp_path, upstream) -> ServerConfig:
    (tmp_path / "me.yaml").write_text("statements:\n  - text: I value honesty above all.\n")
    (tmp_path / "selfalign.yaml").write_text(f"""
country: usa
language: en
timeout: 5
models:
  - name: small
    model: openai/fake
    api_base: {upstream.url}
    api_key: os.environ/SELFALIGN_TEST_UPSTREAM_KEY
  - name: other
    model: hosted_vllm/fake
    api_base: {upstream.url}
aliases:
  quick: small
profiles:
  me: me.yaml
""")
    return load_config(tmp_path / "selfalign.yaml")


def test_config_file(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("SELFALIGN_TEST_UPSTREAM_KEY", "upstream-secret")
    config = write_config(tmp_path, upstream)
    assert config.country == "usa" and config.timeout == 5
    assert [m.name for m in config.models] == ["small", "other"]
    assert config.models[0].key() == "upstream-secret" and "upstream-secret" not in repr(config)
    assert config.profiles["me"] == (tmp_path / "me.yaml").resolve()
    assert config.with_overrides(country="tr", port=None).country == "tr"


@pytest.mark.parametrize("text,match", [("colour: red\n", "unknown key"), ("- a\n", "mapping"),
                                        ("models: [{name: x}]\n", "model"), ("aliases: {a: nothing}\n", "alias"),
                                        ("forward: sideways\n", "forward"), ("k: 0\n", "k must"),
                                        ("country: [\n", "YAML")])
def test_bad_config_files(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_models_routing_aliases_and_suffix(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("SELFALIGN_TEST_UPSTREAM_KEY", "upstream-secret")
    config = write_config(tmp_path, upstream).with_overrides(port=0, log_level="warning")
    with ServerThread(config) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0)
        assert sorted(m.id for m in client.models.list()) == ["other", "quick", "small"]
        for name in ("small", "quick", "quick@kor", "openai/fake", "other@none"):
            client.chat.completions.create(model=name, messages=USER)
            sent = upstream.chat_requests[-1]
            assert sent.body["model"] == "fake"
        assert upstream.chat_requests[-1].body["messages"] == USER  # other@none: nothing injected
        assert upstream.chat_requests[-1].headers.get("authorization") is None
        assert upstream.chat_requests[-3].headers["authorization"] == "Bearer upstream-secret"
        with pytest.raises(openai.NotFoundError, match="small"):
            client.chat.completions.create(model="gpt-4o", messages=USER)
        client.chat.completions.create(model="small", messages=USER, extra_body={"selfalign": {"profile": "me"}})
        assert "honesty" in upstream.chat_requests[-1].body["messages"][0]["content"]


@pytest.mark.parametrize("log_content", [False, True])
def test_message_text_is_logged_only_when_asked(upstream, caplog, log_content):
    caplog.set_level(logging.DEBUG)
    config = ServerConfig(model="openai/fake", api_base=upstream.url, upstream_api_key="sk-upstream-key",
                          api_key="proxy-key", country="ro", language="en", port=0, log_level="debug",
                          log_content=log_content)
    with ServerThread(config) as server:
        client = openai.OpenAI(base_url=server.url, api_key="proxy-key", max_retries=0)
        client.chat.completions.create(model="m", messages=USER)
        httpx.post(f"{server.url}/chat/completions", json={"messages": USER, "selfalign": {"country": "xx"}},
                   headers={"Authorization": "Bearer proxy-key"})
    # Only the server's own records: the test's openai client logs its request bodies at DEBUG.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("selfalign", "uvicorn")))
    assert "chat openai/fake country=ROU" in logged
    assert (SECRET in logged) is log_content
    assert "sk-upstream-key" not in logged and "proxy-key" not in logged


def test_config_round_trips_to_workers(tmp_path, upstream, monkeypatch):
    monkeypatch.setenv("SELFALIGN_TEST_UPSTREAM_KEY", "k")
    config = write_config(tmp_path, upstream).with_overrides(workers=3, api_key="p")
    assert ServerConfig.from_json(config.to_json()) == config


def test_cli_with_two_workers(upstream):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SELFALIGN_API_KEY"}
    proc = subprocess.Popen([*CLI, "serve", "--model", "openai/fake", "--api-base", upstream.url, "--country", "usa",
                             "--min-relevance", "0",
                             "--port", str(port), "--workers", "2", "--log-level", "warning"], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/readiness", proc, 60)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        for _ in range(4):
            raw = client.chat.completions.with_raw_response.create(model="m", messages=USER)
            assert raw.headers["x-selfalign-demonstrations"] == "5"
    finally:
        proc.terminate()
        proc.wait(15)
