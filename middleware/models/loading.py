"""One loaded model per ``local/`` name and process: :func:`get_local_model`."""

from __future__ import annotations

import os
import threading

from .._paths import cache_dir as default_cache_dir
from .registry import CHAT_MODEL, parse_model
from .runtime import Runtime

__all__ = ["get_local_model", "load_model"]

_models: dict[tuple[str, str], Runtime] = {}
_models_lock = threading.Lock()


def load_model(model: str, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Runtime:
    """Load ``local/NAME[?runtime=R&precision=P]`` (or ``NAME``) with its runtime; no process-wide sharing."""
    spec = parse_model(model)
    if spec.runtime == "llamacpp":
        from .llamacpp import LlamaCppModel

        return LlamaCppModel.load(spec.name, cache_dir=cache_dir, progress=progress, precision=spec.precision)
    from .transformers_rt import TransformersModel

    return TransformersModel.load(spec.name, cache_dir=cache_dir, progress=progress)


def get_local_model(name: str = CHAT_MODEL, cache_dir: str | os.PathLike | None = None,
                    progress: bool = True) -> Runtime:
    """Load ``name`` once per process (thread-safe) and return the shared instance.

    ``name`` is what follows ``local/`` (the prefix is accepted too), e.g. ``gemma-3-270m``,
    ``gemma-3-270m?runtime=transformers``, ``/path/model.gguf`` or a model directory.
    """
    spec = parse_model(name)
    key = (spec.key, str(cache_dir or default_cache_dir()) if spec.embedded else "")
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = load_model(name, cache_dir=cache_dir, progress=progress)
        return model
