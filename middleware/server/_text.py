"""Request values made safe to echo: clipped (no amplification) and with control characters escaped (no forged
log lines).

Anything a client sent that the proxy repeats, in an error body or a log line, goes through :func:`clip` or
:func:`printable`: a 1 MB country name must not become a 1 MB answer and a 1 MB log record, and a newline
in a field name must not start a fake ``CRITICAL`` line in the log.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["clip", "printable", "ECHO_CHARS"]

ECHO_CHARS = 64
"""How much of a client's value an error message or a log line repeats."""

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators some log viewers break lines at.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any, limit: int | None = None) -> str:
    """``value`` as one log-safe line: control characters escaped (``\\n`` -> ``\\x0a``), clipped to ``limit``."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    # Lone surrogates cannot be written to a UTF-8 log stream: show them as escapes too.
    text = _CONTROL.sub(_escape, text)
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def clip(value: Any, limit: int = ECHO_CHARS) -> str:
    """``value`` quoted for an error message: its first ``limit`` characters, then "…" when longer."""
    text = value if isinstance(value, str) else str(value)
    more = len(text) > limit
    return repr(printable(text[:limit])) + ("…" if more else "")
