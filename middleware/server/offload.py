"""The aligner's work for a request, off the event loop: a bounded thread pool and a per-message budget.

Everything the aligner does for a message (language detection, chrF++ retrieval, sentence embeddings,
and any decision a newer aligner makes, e.g. whether a message is about values) runs as one call in
:class:`AlignWorkers`, never on the event loop: a message that costs a second of CPU then delays
nobody else's request by more than the CPU it shares. There is no lock around the call: the pool's
size bounds how many messages are aligned at once (each embedding thread has its own model handle,
see :mod:`middleware.retrieval.semantic`), and what is embedded is bounded by the model's token limit.

The budget (``align_budget``, seconds, counted from when a worker starts the message) turns a
message that still takes too long into a 413 for its sender instead of a wait for everyone. Python
cannot stop a thread, so the worker finishes in the background; the bounded input bounds that too.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from .errors import ProxyError

__all__ = ["AlignWorkers", "default_workers"]

T = TypeVar("T")


def default_workers() -> int:
    """Enough threads that expensive messages, which mostly wait for an embedding thread (a pool of its own,
    one per core, see :mod:`middleware.retrieval.semantic`), leave workers free for cheap ones."""
    return max(32, 8 * (os.cpu_count() or 1))


class AlignWorkers:
    """A thread pool of ``workers`` for aligner calls, each given ``budget`` seconds once it starts."""

    def __init__(self, workers: int, budget: float):
        self.budget = budget
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="selfalign-align")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        started: list[float] = []  # when a worker took the call (a list: written by the worker thread)

        def timed() -> T:
            started.append(time.monotonic())
            return fn(*args)

        # One executor future and one wait per call: this runs for every request, so no extra task or wake-up.
        work = asyncio.get_running_loop().run_in_executor(self._pool, timed)
        try:
            while not work.done():
                left = started[0] + self.budget - time.monotonic() if started else self.budget
                if left <= 0:
                    raise ProxyError(413, f"this message took more than the {self.budget:g} s alignment budget "
                                          f"(align_budget) to process: send a shorter one",
                                     code="message_too_expensive", param="messages")
                await asyncio.wait((work,), timeout=left)
            return work.result()
        finally:
            if not work.done():
                work.cancel()  # stops a call still queued; a running one finishes in its thread

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
