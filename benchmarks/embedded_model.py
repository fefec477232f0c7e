"""Benchmark: the embedded models on the transformers runtime (before) and the llama.cpp runtime, side by side.

One run measures, for each configuration (runtime x model):

* ``selfalign serve`` cold start to readiness with an empty cache (``SELFALIGN_CACHE_DIR`` points at a
  fresh temp dir), then a warm start with that cache; peak RSS of the server process (VmHWM, after
  readiness and one answered request);
* ``selfalign chat --message`` from launch to exit (a 30-token answer);
* chat decoding in-process: time to first token and tokens/s of a 60-token greedy answer;
* exact-mode evaluation: prompts scored per second, and the wall time of a reduced reproduction
  (``--pairs`` x the 4 paper strategies x ``--limit`` probes each), extrapolated to the full 14-pair
  reproduction by the number of prompts it has;
* agreement of Gemma's option probabilities with the transformers runtime on the reduced
  reproduction, for llama.cpp on the GGUF as stored and on its de-quantised f16 copy
  (``?precision=f16``): max and mean |delta p| and the share of identical
  improved/unchanged/worsened verdicts.

    python3 benchmarks/embedded_model.py                # everything (several minutes)
    python3 benchmarks/embedded_model.py --skip-cold-transformers   # reuse the converted Gemma

The machine's load average is printed with the figures: on shared cores every timing moves with it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from middleware.eval import EvalConfig, run_eval  # noqa: E402
from middleware.eval.backends import LocalBackend  # noqa: E402
from middleware.eval.metrics import verdict  # noqa: E402
from middleware.eval.config import PAPER_STRATEGIES  # noqa: E402
from middleware.eval.runner import load_pair, resolve_pairs  # noqa: E402
from middleware.models.loading import load_model  # noqa: E402

CONFIGS = [("transformers", "gemma-3-270m"), ("llamacpp", "gemma-3-270m"), ("llamacpp", "gemma-3-270m?precision=f16"),
           ("llamacpp", "smollm2-135m-instruct")]
BASELINE = "transformers · gemma-3-270m"


def model_name(runtime: str, model: str) -> str:
    """``local/`` name with the runtime option added to the model's own options."""
    return f"local/{model}{'&' if '?' in model else '?'}runtime={runtime}"


STORY = [{"role": "user", "content": "Write a long story about a cat who learns to sail across the sea."}]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _env(runtime: str, cache: Path) -> dict:
    return {**os.environ, "SELFALIGN_CACHE_DIR": str(cache), "SELFALIGN_RUNTIME": runtime,
            "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def serve_start(runtime: str, model: str, cache: Path, timeout: float = 900) -> dict:
    """Start ``selfalign serve`` on ``local/model``; seconds to readiness and peak RSS."""
    port = _free_port()
    env = _env(runtime, cache)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "middleware", "serve", "--country", "us", "--port", str(port),
                             "--model", model_name(runtime, model)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/health/readiness", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError("serve did not become ready")
            time.sleep(0.05)
        ready = time.perf_counter() - t0
        body = json.dumps({"model": model_name(runtime, model), "max_tokens": 16, "temperature": 0,
                           "messages": [{"role": "user", "content": "Is work a duty?"}]}).encode()
        req = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        t1 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=600) as r:
            answer = json.loads(r.read())["choices"][0]["message"]["content"]
        first_request = time.perf_counter() - t1
        return {"ready_s": ready, "first_request_s": first_request, "peak_rss_mb": _hwm_mb(proc.pid),
                "answer": answer}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chat_once(runtime: str, model: str, cache: Path) -> float:
    """Seconds from launching ``selfalign chat --message`` (a 30-token answer) to its exit."""
    env = _env(runtime, cache)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "middleware", "chat", "--country", "us", "--model", model_name(runtime, model),
                    "--message", "Is work a duty towards society?", "--max-tokens", "30", "--temperature", "0"],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    return time.perf_counter() - t0


def decode_speed(lm, tokens: int = 60) -> dict:
    """Time to first token and tokens/s of a greedy answer of up to ``tokens`` tokens."""
    prompt, stops = lm.format_chat(STORY)
    lm.generate("Hi", max_tokens=1, temperature=0)  # first-call set-up is not decoding speed
    t0 = time.perf_counter()
    first = last = None
    used = 0
    for chunk in lm.stream_chunks(prompt, max_tokens=tokens, temperature=0, stop=stops):
        now = time.perf_counter()
        if first is None and chunk.text:
            first = now
        last, used = now, chunk.completion_tokens
    return {"ttft_s": (first or last) - t0, "tokens": used,
            "tok_per_s": (used - 1) / (last - first) if first and last > first and used > 1 else None}


def reproduction(model: str, pairs: list[tuple[str, str]], limit: int) -> tuple[object, float]:
    cfg = EvalConfig(model=model, pairs=pairs, strategies=list(PAPER_STRATEGIES),
                     mode="exact", limit=limit, use_cache=False, n_boot=0)
    backend = LocalBackend(cfg.model, progress=False)
    backend.model  # loaded outside the timed region
    t0 = time.perf_counter()
    run = run_eval(cfg, backend=backend, progress=False)
    return run, time.perf_counter() - t0


def full_prompts() -> int:
    """Distinct prompts of the full exact-mode reproduction (14 pairs x (zero-shot + 4 strategies)), roughly."""
    total = 0
    for language, country in resolve_pairs(pairs="paper")[0]:
        total += len(load_pair(language, country).probes) * (1 + len(PAPER_STRATEGIES))
    return total


def agreement(a, b, tol: float) -> dict:
    """Option-1 probability and verdicts of run ``a`` vs run ``b`` on the same rows."""
    def index(run):
        return {(r.pair, r.probe_id, r.condition): r for r in run.rows}

    ia, ib = index(a), index(b)
    deltas = [abs(ia[k].dist[0] - ib[k].dist[0]) for k in ia if k in ib and ia[k].dist and ib[k].dist]
    same = total = 0
    for (pair, probe, cond), ra in ia.items():
        if cond == "zero-shot" or (pair, probe, "zero-shot") not in ia or (pair, probe, cond) not in ib:
            continue
        za, zb, rb = ia[(pair, probe, "zero-shot")], ib[(pair, probe, "zero-shot")], ib[(pair, probe, cond)]
        va, vb = verdict(za.p, ra.p, tol), verdict(zb.p, rb.p, tol)
        if va and vb:
            total += 1
            same += va == vb
    return {"prompts": len(deltas), "max_abs_dp": max(deltas), "mean_abs_dp": statistics.fmean(deltas),
            "same_verdicts": same, "verdicts": total, "share": same / max(1, total)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default="en-us,ro-ro", help="Pairs of the reduced reproduction.")
    ap.add_argument("--limit", type=int, default=10, help="Probes per pair in the reduced reproduction.")
    ap.add_argument("--skip-cold-transformers", action="store_true",
                    help="Skip the transformers cold start (a GGUF conversion of a minute or more).")
    ap.add_argument("--json", type=Path, help="Also write the figures as JSON here.")
    args = ap.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)
    pairs = resolve_pairs(pairs=args.pairs)[0]
    figures: dict = {"load_before": _load(), "cores": len(os.sched_getaffinity(0)), "configs": {}}

    for runtime, model in CONFIGS:
        label = f"{runtime} · {model}"
        f = figures["configs"][label] = {}
        console.print(f"[bold]{label}[/] (load {_load()})")
        with tempfile.TemporaryDirectory() as tmp:
            if runtime == "transformers" and args.skip_cold_transformers:
                f["cold"] = None
                cache = None
            else:
                f["cold"] = serve_start(runtime, model, Path(tmp))
                cache = Path(tmp)
                console.print(f"  cold start {f['cold']['ready_s']:.1f} s, peak {f['cold']['peak_rss_mb']:.0f} MB")
            # Warm: the temp cache from the cold start, or the user cache if the cold start was skipped.
            warm_cache = cache or Path(os.environ.get("SELFALIGN_CACHE_DIR") or Path.home() / ".cache" / "selfalign")
            f["warm"] = serve_start(runtime, model, warm_cache)
            console.print(f"  warm start {f['warm']['ready_s']:.1f} s, peak {f['warm']['peak_rss_mb']:.0f} MB; "
                          f"answer: {f['warm']['answer'][:60]!r}")
            f["chat_s"] = chat_once(runtime, model, warm_cache)
            console.print(f"  chat --message, launch to exit: {f['chat_s']:.1f} s")
        lm = load_model(model_name(runtime, model), progress=False)
        f["decode"] = decode_speed(lm)
        console.print(f"  decode: first token {f['decode']['ttft_s']:.2f} s, {f['decode']['tok_per_s'] or 0:.1f} tok/s "
                      f"({f['decode']['tokens']} tokens)")
        del lm

    runs = {}
    prompts_full = full_prompts()
    for runtime, model in CONFIGS:
        if not model.startswith("gemma-3-270m"):
            continue  # the evaluator scores with the base model
        label = f"{runtime} · {model}"
        run, seconds = reproduction(model_name(runtime, model), pairs, args.limit)
        runs[label] = run
        figures["configs"][label]["eval"] = {
            "prompts": run.requests, "seconds": seconds, "prompts_per_s": run.requests / seconds,
            "full_prompts": prompts_full, "full_estimate_s": seconds / run.requests * prompts_full}
        console.print(f"  eval {label}: {run.requests} prompts in {seconds:.1f} s "
                      f"({run.requests / seconds:.2f}/s; full reproduction ≈ {seconds / run.requests * prompts_full / 60:.0f} min)")
    tol = runs[BASELINE].config.effective_tolerance()
    for label, run in runs.items():
        if label != BASELINE:
            figures["configs"][label]["agreement"] = agreement(runs[BASELINE], run, tol)
    figures["load_after"] = _load()

    table = Table(title=f"embedded models, {figures['cores']} cores; load average {figures['load_before']} "
                        f"(before) / {figures['load_after']} (after)")
    table.add_column("")
    for label in figures["configs"]:
        table.add_column(label, justify="right")

    def row(name, fn):
        cells = []
        for f in figures["configs"].values():
            try:
                cells.append(fn(f))
            except (KeyError, TypeError):
                cells.append("–")
        table.add_row(name, *cells)

    row("serve ready, empty cache (s)", lambda f: f"{f['cold']['ready_s']:.1f}")
    row("serve ready, warm (s)", lambda f: f"{f['warm']['ready_s']:.1f}")
    row("peak RSS, cold (MB)", lambda f: f"{f['cold']['peak_rss_mb']:.0f}")
    row("peak RSS, warm (MB)", lambda f: f"{f['warm']['peak_rss_mb']:.0f}")
    row("chat --message, 30 tokens, launch to exit (s)", lambda f: f"{f['chat_s']:.1f}")
    row("first token (s)", lambda f: f"{f['decode']['ttft_s']:.2f}")
    row("decode (tokens/s)", lambda f: f"{f['decode']['tok_per_s']:.1f}")
    row("exact-mode prompts/s", lambda f: f"{f['eval']['prompts_per_s']:.2f}")
    row("reduced reproduction (s)", lambda f: f"{f['eval']['seconds']:.0f}")
    row("full reproduction, est. (min)", lambda f: f"{f['eval']['full_estimate_s'] / 60:.0f}")
    base = figures["configs"][BASELINE]["eval"]
    row("exact-mode speed-up vs transformers", lambda f: f"{base['seconds'] / f['eval']['seconds']:.2f}x")
    row("max |Δp| vs transformers", lambda f: f"{f['agreement']['max_abs_dp']:.4f}")
    row("mean |Δp| vs transformers", lambda f: f"{f['agreement']['mean_abs_dp']:.4f}")
    row(f"identical verdicts (tolerance {tol})",
        lambda f: f"{f['agreement']['same_verdicts']}/{f['agreement']['verdicts']} = {100 * f['agreement']['share']:.1f}%")
    console.print(table)
    console.print(f"reduced reproduction: {base['prompts']} prompts ({args.pairs} x 4 strategies x {args.limit} probes "
                  f"+ zero-shot); full reproduction {prompts_full} prompts; agreement on the same prompts")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
