"""Compatibility names for code written before the runtimes were split.

``LocalModel`` is the transformers runtime; new code uses
:func:`middleware.models.loading.get_local_model`, which picks the runtime.
"""

from __future__ import annotations

from .._messages import message_text
from .._paths import cache_dir as default_cache_dir
from .decoding import Completion, StreamChunk
from .loading import get_local_model
from .registry import BASE_MODEL as EMBEDDED_MODEL
from .transformers_rt import TransformersModel as LocalModel, format_chat

__all__ = ["EMBEDDED_MODEL", "Completion", "StreamChunk", "LocalModel", "default_cache_dir",
           "format_chat", "get_local_model", "message_text"]
