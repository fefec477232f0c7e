"""The chat loop: a conversation that aligns every turn, behind any backend function."""

from ..errors import ChatBackendError
from .backends import litellm_backend, preload_model
from .render import WordWrap, demos_plain, demos_table
from .session import ChatSession, Comparison, Turn

__all__ = ["ChatSession", "Turn", "Comparison", "ChatBackendError", "litellm_backend", "preload_model", "demos_plain",
           "demos_table", "WordWrap"]
