"""OpenAI message helpers shared by the aligner, the local model and the chat."""

from __future__ import annotations

from typing import Any

__all__ = ["message_text"]


def message_text(content: Any) -> str:
    """Text of an OpenAI message ``content``: a string, None, or a list of parts (text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return str(content)
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type", "text") == "text":
            parts.append(str(part.get("text", "")))
    return "\n".join(parts)
