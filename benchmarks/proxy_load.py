"""Load test: many mixed streaming / non-streaming requests through ``selfalign serve``.

Counts errors (status other than 200, broken connections) and truncated streams (a
stream without ``data: [DONE]`` or with an error event), checks that every answer is
complete, and reads the server's resident memory before and after each batch: memory
that keeps growing batch after batch would be a leak. All traffic is on 127.0.0.1.

Then the same number of requests with fixed and with varied selections, side by side:
fixed = every request uses the server's default (Romania); varied = each request sends its
own ``selfalign`` object, cycling through more country/k/strategy combinations than the
requests of a pass (so every request of the first pass asks for an aligner never built).

Last, the mixed run (issue 22): a server detecting each message's language, and a share of
expensive non-English messages (``--expensive``, default 1%: a 15,000-character French text and
a 40 KB message of one letter and 20,000 combining accents, taking turns; French has no probes,
so these are embedded) among short English ones. It reports the p50/p99 of the short requests
without and with the expensive ones, and how the expensive ones fared.

    python3 benchmarks/proxy_load.py [--requests 1000] [--concurrency 100] [--batches 3] [--expensive 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_overhead import (QUESTIONS, percentile, rss_mib, run_load, start_selfalign,  # noqa: E402
                            start_upstream, stop)

REPLY = "A reply long enough to arrive in several streamed chunks, one word at a time, as models do."


def check(result, stream: bool) -> str | None:
    """None if the answer is complete, else what is wrong with it."""
    if result.error or result.status != 200:
        return "error"
    if not stream:
        try:
            content = json.loads(result.body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return "error"
        return None if content == REPLY else "error"
    events = [line[6:] for line in result.body.decode("utf-8", "replace").split("\n") if line.startswith("data: ")]
    if not events or events[-1] != "[DONE]" or any('"error"' in e for e in events):
        return "truncated"
    text = "".join((json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                   for e in events[:-1])
    return None if text == REPLY else "truncated"


STRATEGIES = ("chrf", "chrf-category", "random", "random-category")


def varied_selections(ks: range = range(1, 11)) -> list[dict]:
    """Every country with answers x k x strategy, in a fixed shuffled order."""
    import random

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from middleware.data.answers import available_countries

    combos = [{"country": c, "language": "en", "k": k, "strategy": s}
              for c in available_countries() for k in ks for s in STRATEGIES]
    random.Random(0).shuffle(combos)
    return combos


def body_with(selections: list[dict] | None):
    def body(i: int, stream: bool) -> bytes:
        payload = {"model": "fake", "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                   "max_tokens": 64, "stream": stream}
        if selections:
            payload["selfalign"] = selections[i % len(selections)]
        return json.dumps(payload).encode()

    return body


def compare_selections(port: int, n: int, concurrency: int) -> bool:
    """Fixed vs varied selections, one pass each (varied twice: cold, then again), on the same server."""
    combos = varied_selections()
    print(f"\nselections, {n} requests each, concurrency {concurrency}; varied cycles through {len(combos)} "
          f"country/k/strategy combinations")
    print(f"{'selection':>14} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}")
    ok = True
    for name, selections in (("fixed", None), ("varied (cold)", combos), ("varied (again)", combos)):
        started = time.perf_counter()
        results = asyncio.run(run_load(port, "/v1/chat/completions", n, concurrency, stream_every=2,
                                       body_for=body_with(selections)))
        elapsed = time.perf_counter() - started
        errors = sum(r.error is not None or r.status != 200 for r in results)
        ok &= errors == 0
        lat = [r.seconds for r in results]
        print(f"{name:>14} {errors:6d} {percentile(lat, 50) * 1000:8.1f} {percentile(lat, 99) * 1000:8.1f} "
              f"{len(results) / elapsed:7.0f}")
    return ok


FRENCH = ("Je pense que les femmes devraient pouvoir travailler autant que les hommes, et que l'État doit garantir "
          "l'égalité des salaires dans toutes les entreprises du pays. ") * 100
ACCENTS = "a" + "\u0301" * 20_000


def mixed_body(share: float):
    """Short English questions; every 1/share-th request an expensive non-English message, unique (no cache helps)."""
    every = max(1, round(1 / share)) if share > 0 else 0

    def body(i: int, stream: bool) -> bytes:
        if every and i % every == every // 2:
            text = f"{i} {FRENCH}"[:15_000] if (i // every) % 2 == 0 else f"{i}{ACCENTS}"
        else:
            text = QUESTIONS[i % len(QUESTIONS)]
        return json.dumps({"model": "fake", "messages": [{"role": "user", "content": text}], "max_tokens": 64,
                           "stream": stream}).encode()

    body.expensive = lambda i: bool(every) and i % every == every // 2  # type: ignore[attr-defined]
    return body


def mixed_run(url: str, n: int, concurrency: int, share: float) -> bool:
    """Short English requests with and without ``share`` expensive non-English ones, on a language-detecting server."""
    proxy = None
    try:
        proxy, port = start_selfalign(url, "--language", "auto")
        warm = mixed_body(0.5)
        asyncio.run(run_load(port, "/v1/chat/completions", 4, 2, body_for=warm))  # loads the embedder
        asyncio.run(run_load(port, "/v1/chat/completions", 200, concurrency, stream_every=2, body_for=mixed_body(0)))
        print(f"\nmixed run: {n} requests, concurrency {concurrency}, language detected per message; "
              f"expensive = 15,000 French characters or 1 letter + 20,000 combining accents")
        print(f"{'expensive share':>15} {'errors':>6} {'short p50 ms':>12} {'short p99 ms':>12} {'short max ms':>12} "
              f"{'expensive (ok) max s':>20}")
        ok = True
        for run_share in (0.0, share):
            body = mixed_body(run_share)
            results = asyncio.run(run_load(port, "/v1/chat/completions", n, concurrency, stream_every=2,
                                           body_for=body, timeout=120))
            errors = sum(r.error is not None or r.status != 200 for r in results)
            ok &= errors == 0
            short = [r.seconds for r in results if not body.expensive(r.index)]
            costly = [r for r in results if body.expensive(r.index)]
            costly_text = (f"{max(r.seconds for r in costly):.2f} ({sum(r.status == 200 for r in costly)}/{len(costly)})"
                           if costly else "-")
            print(f"{run_share:15.1%} {errors:6d} {percentile(short, 50) * 1000:12.1f} "
                  f"{percentile(short, 99) * 1000:12.1f} {max(short) * 1000:12.1f} {costly_text:>20}")
        return ok
    finally:
        stop(proxy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per batch")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02, help="upstream latency in seconds")
    parser.add_argument("--expensive", type=float, default=0.01, help="share of expensive messages in the mixed run")
    parser.add_argument("--only-mixed", action="store_true", help="run only the mixed run")
    args = parser.parse_args()

    up = proxy = None
    try:
        up, url = start_upstream(args.latency, reply=REPLY)
        if args.only_mixed:
            sys.exit(0 if mixed_run(url, args.requests, args.concurrency, args.expensive) else 1)
        proxy, port = start_selfalign(url)
        # Warm-up, so the first reading already includes imports, pools and caches.
        asyncio.run(run_load(port, "/v1/chat/completions", 200, args.concurrency, stream_every=2))
        rss = [rss_mib(proxy.pid)]
        print(f"{args.batches} batches of {args.requests} requests (every 2nd streamed), concurrency "
              f"{args.concurrency}, upstream latency {args.latency * 1000:.0f} ms")
        print(f"{'batch':>5} {'errors':>6} {'truncated':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} {'RSS MiB':>8}")
        total_errors = total_truncated = 0
        for b in range(1, args.batches + 1):
            started = time.perf_counter()
            results = asyncio.run(run_load(port, "/v1/chat/completions", args.requests, args.concurrency,
                                           stream_every=2))
            elapsed = time.perf_counter() - started
            problems = [check(r, r.stream) for r in results]
            errors, truncated = problems.count("error"), problems.count("truncated")
            total_errors += errors
            total_truncated += truncated
            rss.append(rss_mib(proxy.pid))
            lat = [r.seconds for r in results]
            print(f"{b:5d} {errors:6d} {truncated:9d} {percentile(lat, 50) * 1000:8.1f} "
                  f"{percentile(lat, 99) * 1000:8.1f} {len(results) / elapsed:7.0f} {rss[-1]:8.1f}")
        print(f"RSS before {rss[0]:.1f} MiB, after batch 1 {rss[1]:.1f} MiB, after batch {args.batches} "
              f"{rss[-1]:.1f} MiB (growth after batch 1: {rss[-1] - rss[1]:+.1f} MiB)")
        ok = total_errors == 0 and total_truncated == 0
        print(f"errors {total_errors}, truncated streams {total_truncated}: {'ok' if ok else 'FAILED'}")
        ok &= compare_selections(port, args.requests, args.concurrency)
        ok &= mixed_run(url, args.requests, args.concurrency, args.expensive)
        sys.exit(0 if ok else 1)
    finally:
        stop(proxy)
        stop(up)


if __name__ == "__main__":
    main()
