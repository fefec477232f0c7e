"""The examples run as a user would run them: `selfalign serve` as a process, the example scripts against it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from processes import free_port, stop, wait_ready



ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'selfalign'; from middleware.cli import main; main()"]


def env(**extra: str) -> dict:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SELFALIGN_"))}
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    out.update(extra)
    return out


@pytest.fixture(scope="module")
def proxy_url(upstream):
    port = free_port()
    proc = subprocess.Popen([*CLI, "serve", "--model", "openai/fake", "--api-base", upstream.url, "--country", "ro",
                             "--language", "en", "--min-relevance", "0", "--port", str(port),
                             "--api-key", "example-key",
                             "--log-level", "warning"], env=env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/readiness", proc, 60)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


def run_example(name: str, *args: str, **extra_env: str) -> str:
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=120,
                         env=env(**extra_env))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_openai_sdk_proxy_example(proxy_url, upstream):
    out = run_example("openai_sdk_proxy.py", proxy_url, SELFALIGN_API_KEY="example-key", SELFALIGN_MODEL="fake")
    lines = out.splitlines()
    assert lines[0].startswith("server default: 5 demonstrations")
    assert lines[3].startswith("body usa: 3 demonstrations") and lines[4].startswith("injection off: 0 ")
    assert "streamed: 'Hello from the fake upstream" in out and "preview (rou-en):" in out
    systems = [r.body["messages"][0]["content"] for r in upstream.chat_requests
               if r.body["messages"][0]["role"] == "system"]
    assert len(systems) == 5  # all but "injection off"
    assert "Romania" in systems[0] and "United States" in systems[3]


def test_openai_sdk_proxy_example_reads_env(proxy_url):
    out = run_example("openai_sdk_proxy.py", SELFALIGN_BASE_URL=proxy_url, SELFALIGN_API_KEY="example-key")
    assert "server default: 5 demonstrations" in out


def test_wrapped_client_example(upstream):
    out = run_example("wrapped_client.py", upstream.url, "fake", SELFALIGN_COUNTRY="kor")
    assert out.count("\n  - ") == 5 and "aligned with kor: 'Hello" in out and "async, streamed" in out
    firsts = [r.body["messages"][0] for r in upstream.chat_requests]
    assert [m["role"] for m in firsts] == ["system"] * 3
    assert "Korea" in firsts[0]["content"] and "United States" in firsts[1]["content"]


def test_litellm_proxy_config_names_the_callback():
    config = yaml.safe_load((EXAMPLES / "litellm_proxy_config.yaml").read_text())
    target = config["litellm_settings"]["callbacks"]
    from litellm.proxy.types_utils.utils import get_instance_fn

    from middleware.integrations.litellm_callback import selfalign_callback

    assert get_instance_fn(target, str(EXAMPLES / "litellm_proxy_config.yaml")) is selfalign_callback
    assert {m["model_name"] for m in config["model_list"]} == {"gpt-4o-mini", "gemma-3-270m"}


def _proxy_python() -> str | None:
    """A Python that can run LiteLLM Proxy (the `litellm[proxy]` extra), or None."""
    candidate = os.environ.get("SELFALIGN_LITELLM_PYTHON", sys.executable)
    if not Path(candidate).exists():
        return None
    # Importing the server module is the only reliable check: the extra has many optional dependencies.
    probe = subprocess.run([candidate, "-c", "import litellm.proxy.proxy_server"], capture_output=True,
                           env=env(LITELLM_LOCAL_MODEL_COST_MAP="True"), timeout=120)
    return candidate if probe.returncode == 0 else None


def test_litellm_proxy_runs_the_callback(upstream, tmp_path):
    python = _proxy_python()
    if python is None:
        if os.environ.get("SELFALIGN_REQUIRE_LITELLM_PROXY"):  # CI builds that environment: a skip would hide a break
            pytest.fail(f"LiteLLM Proxy cannot run with {os.environ.get('SELFALIGN_LITELLM_PYTHON', sys.executable)}")
        pytest.skip("LiteLLM Proxy is not installed (pip install 'litellm[proxy]', or set SELFALIGN_LITELLM_PYTHON)")
    config = yaml.safe_load((EXAMPLES / "litellm_proxy_config.yaml").read_text())
    config["model_list"] = [{"model_name": "fake", "litellm_params": {
        "model": "openai/fake", "api_base": upstream.url, "api_key": "none"}}]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    master = "sk-" + secrets.token_hex(32)  # LiteLLM Proxy refuses to start without a strong master key
    proc = subprocess.Popen([python, "-m", "litellm.proxy.proxy_cli", "--config", str(path), "--host", "127.0.0.1",
                             "--port", str(port)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env(SELFALIGN_COUNTRY="ro", SELFALIGN_LANGUAGE="en",
                                    LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_MASTER_KEY=master))
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/liveliness", proc, 120)
        import openai

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=master, max_retries=0)
        client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "Is work important?"}])
        assert "Romania" in upstream.chat_requests[-1].body["messages"][0]["content"]
        client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "Is work important?"}],
                                       extra_body={"selfalign": {"country": "tr"}})
        sent = upstream.chat_requests[-1].body
        assert "selfalign" not in sent and "Romania" not in sent["messages"][0]["content"]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}],
                                           extra_body={"selfalign": {"country": "Atlantis"}})
    finally:
        stop(proc)
