"""The chat loop: a conversation that aligns every turn, behind any backend function."""

from ..errors import ChatBackendError
from .session import ChatSession, Comparison, Turn, demos_plain, demos_table, litellm_backend, preload_model

__all__ = ["ChatSession", "Turn", "Comparison", "ChatBackendError", "litellm_backend", "preload_model", "demos_plain",
           "demos_table"]
