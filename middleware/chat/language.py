"""Is a message English?  Enough to tell a user that the embedded model only speaks English.

A cheap heuristic, not language identification: a message is English unless it uses a
non-Latin script, or has several words and few of them are common English words (fewer
still counting as English when it has accented letters).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["looks_english", "english_only_note"]

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_COMMON = frozenset("""
a about after all also am an and any are as at be because been but by can could did do does
doing don't for from had has have he her him his how i if in is it its just like me men more
most my no not now of on one or our out people should so some than that the their them then
there these they think this to too up us was we were what when where which who why will with
women would yes you your work job jobs family religion god important children parents money
government country politics life friends leisure
""".split())


def _latin(ch: str) -> bool:
    return not ch.isalpha() or "LATIN" in unicodedata.name(ch, "LATIN")


def looks_english(text: str) -> bool:
    """False for text in a non-Latin script or with (almost) no common English words."""
    if not all(_latin(ch) for ch in text):
        return False
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 3:
        return True  # too short to tell; do not nag
    share = sum(w in _COMMON for w in words) / len(words)
    # Accented letters (ă, ş, ü) are rare in English: then ask for more English words.
    accented = any(ch.isalpha() and not ch.isascii() for ch in text)
    return share >= (0.4 if accented else 0.15)


def english_only_note(model: str) -> str:
    return (f"note: {model} is a tiny embedded model that only writes English. For other languages "
            "point the chat at a real model: --model ollama/llama3.1 (a local Ollama), or an API model "
            "such as --model gpt-4o-mini; or ask in English (--language en gives English demonstrations).")
