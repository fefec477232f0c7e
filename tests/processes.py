"""Processes the tests start: servers (a free loopback port, waiting for readiness, stopping),
the CLI in a pseudo-terminal, a fresh interpreter."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, seconds: float) -> None:
    """Poll ``url`` until it answers 200; fail early, with its stderr, if the process exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {seconds} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def python_prints(code: str, timeout: float = 300) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); the last line it printed."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def spawn_cli(args: list[str], cwd, env: dict, timeout: float, dimensions: tuple[int, int]):
    """``python -m middleware ARGS`` in a pseudo-terminal (pexpect), with Ctrl-C working.

    A process started in the background by a non-interactive shell (``cmd &``, as CI runners
    may do) ignores SIGINT, and its children inherit that: Ctrl-C sent to the CLI would then do
    nothing.  The child gets the default SIGINT action back, as it has in a user's terminal.
    """
    import pexpect

    return pexpect.spawn(sys.executable, ["-m", "middleware", *args], cwd=str(cwd), env=env, encoding="utf-8",
                         timeout=timeout, dimensions=dimensions,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
