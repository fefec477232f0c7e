"""Is a message English?  Enough to tell a user that the embedded model only speaks English.

Uses the language detector of the retrieval layer (:func:`middleware.retrieval.language.detect_language`),
so the chat and the choice of demonstrations never disagree about a message's language.
"""

from __future__ import annotations

import re

__all__ = ["looks_english", "english_only_note"]

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def looks_english(text: str) -> bool:
    """False when the message is detectably in another language; short messages count as English."""
    from ..retrieval.language import detect_language

    if len(_WORD.findall(text)) < 3:
        return True  # too short to tell; do not nag
    return detect_language(text) in (None, "en")


def english_only_note(model: str) -> str:
    return (f"note: {model} is a tiny embedded model that only writes English. For other languages "
            "point the chat at a real model: --model ollama/llama3.1 (a local Ollama), or an API model "
            "such as --model gpt-4o-mini; or ask in English (--language en gives English demonstrations).")
