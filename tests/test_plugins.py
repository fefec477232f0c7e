"""Strategy plugins, as in simonw/llm: a package installed beside selfalign declares a strategy in the
`selfalign.strategies` entry-point group, and the proxy, `selfalign demos` and `selfalign eval` use it by name.

The plugin is a real package: the test builds its wheel (a zip with the module and its metadata, as a
build backend writes it, so nothing is downloaded and no backend need be installed) and pip installs it
into a temporary folder that the processes under test get on their path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import openai
import pytest

from fake_upstream import FakeUpstream
from processes import free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]
NAME = "least-similar"
PLUGIN = textwrap.dedent('''
    """The k allowed statements least like the message: a deliberately odd choice, easy to recognise."""

    import numpy as np


    def pick(categories, query, k, rng, allowed, scores):
        idx = np.flatnonzero(allowed)
        return idx[np.argsort(scores[idx], kind="stable")[:k]].tolist()
''')
DIST = "selfalign_least_similar-0.1"
METADATA = {
    f"{DIST}.dist-info/METADATA": "Metadata-Version: 2.1\nName: selfalign-least-similar\nVersion: 0.1\n",
    f"{DIST}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: selfalign-tests\nRoot-Is-Purelib: true\n"
                               "Tag: py3-none-any\n",
    f"{DIST}.dist-info/entry_points.txt": f"[selfalign.strategies]\n{NAME} = selfalign_least_similar:pick\n",
}


def build_wheel(out: Path) -> Path:
    """The plugin's wheel (PEP 427): its module, metadata, entry points and a RECORD of their hashes."""
    files = {"selfalign_least_similar.py": PLUGIN, **METADATA}
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{DIST}.dist-info/RECORD,,")
    wheel = out / f"{DIST}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in {**files, f"{DIST}.dist-info/RECORD": "\n".join(record) + "\n"}.items():
            z.writestr(name, text)
    return wheel


MESSAGE = "Is it justifiable to cheat on taxes?"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """An environment whose processes see the installed plugin (and this checkout of selfalign)."""
    wheel = build_wheel(tmp_path_factory.mktemp("plugin-wheel"))
    site = tmp_path_factory.mktemp("plugin-site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                           "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(site.glob("selfalign_least_similar-0.1.dist-info/entry_points.txt"))
    env = {k: v for k, v in os.environ.items() if k != "SELFALIGN_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    return env


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "middleware", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _demos(env: dict, strategy: str) -> dict:
    done = _cli(env, "demos", MESSAGE, "-c", "usa", "-l", "en", "-k", "3", "-s", strategy, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_demos_use_a_plugin_strategy_by_name(plugin_env):
    odd, paper = _demos(plugin_env, NAME), _demos(plugin_env, "chrf")
    odd_scores = [d["score"] for d in odd["demonstrations"]]
    assert len(odd_scores) == 3 and odd_scores == sorted(odd_scores)  # the least similar first
    assert max(odd_scores) < min(d["score"] for d in paper["demonstrations"])
    assert f"strategy:{NAME}" in odd["signature"]
    assert NAME in _cli(plugin_env, "demos", "--help").stdout.replace("│", "").replace("\n", "")


def test_the_plugin_is_unknown_without_the_package():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = _cli(env, "demos", MESSAGE, "-c", "usa", "-s", NAME)
    assert done.returncode == 2 and f"unknown strategy '{NAME}'" in done.stderr and "chrf" in done.stderr


def test_the_proxy_uses_a_plugin_strategy_by_name(plugin_env):
    expected = [d["text"] for d in _demos(plugin_env, NAME)["demonstrations"]]
    port = free_port()
    with FakeUpstream() as up:
        proc = subprocess.Popen([sys.executable, "-m", "middleware", "serve", "--model", "openai/fake", "--api-base",
                                 up.url, "--country", "usa", "--language", "en", "--port", str(port),
                                 "--log-level", "warning"], env=plugin_env, stderr=subprocess.PIPE, text=True)
        try:
            wait_ready(f"http://127.0.0.1:{port}/health/readiness", proc, 60)
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": MESSAGE}],
                extra_body={"selfalign": {"strategy": NAME, "k": 3}})
            assert raw.headers["x-selfalign-demonstrations"] == "3"
            assert f"strategy:{NAME}" in raw.headers["x-selfalign-signature"]
            system = up.requests[-1].body["messages"][0]["content"]
            assert [line[2:] for line in system.splitlines() if line.startswith("- ")] == expected
        finally:
            stop(proc)


def test_eval_runs_a_plugin_strategy(plugin_env, tmp_path):
    """The evaluator resolves the plugin by name too (a fake upstream answers every probe)."""
    with FakeUpstream() as up:
        done = _cli({**plugin_env, "OPENAI_API_KEY": "x"}, "eval", "--model", "openai/fake", "--api-base", up.url, "--pairs", "en-us",
                    "--strategy", NAME, "--limit", "2", "--samples", "1", "--no-cache", "--bootstrap", "0",
                    "--quiet", "--out", str(tmp_path))
        assert done.returncode == 0, done.stderr[-2000:]
        results = json.loads((tmp_path / "results.json").read_text())
        assert NAME in json.dumps(results["config"]) and up.requests
        (signature,) = results["signatures"].values()
        assert f"strategy:{NAME}|k:5|lang:en|profile:usa-en|" in signature
        assert f"`{signature}`" in (tmp_path / "report.md").read_text()


def test_chat_uses_a_plugin_strategy_by_name(plugin_env):
    expected = [d["text"] for d in _demos(plugin_env, NAME)["demonstrations"]]
    with FakeUpstream() as up:
        done = _cli({**plugin_env, "OPENAI_API_KEY": "x"}, "chat", "-c", "usa", "-l", "en", "-k", "3", "-s", NAME,
                    "--model", "openai/fake", "--api-base", up.url, "--message", MESSAGE)
        assert done.returncode == 0, done.stderr[-2000:]
        system = up.requests[-1].body["messages"][0]["content"]
        assert [line[2:] for line in system.splitlines() if line.startswith("- ")] == expected
