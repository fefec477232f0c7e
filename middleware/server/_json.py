"""Fast JSON when orjson is installed, the standard library otherwise.

Two promises the proxy makes about request bodies live here: numbers pass through
exactly (orjson turns integers beyond 64 bits into floats, so such bodies are parsed
by the standard library, whose ints are unbounded), and nesting is bounded
(:data:`MAX_DEPTH`), because copying and re-encoding a deeply nested body recurses.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["dumps", "loads", "JSONDecodeError", "MAX_DEPTH", "too_deep"]

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a request body (tool schemas need ~10)."""

# 19 digits in a row may be an integer outside [-2**63, 2**64): a cheap, safe over-approximation
# (digits inside strings also match; the standard library then parses that body, slower but exact).
_LONG_DIGITS = re.compile(rb"\d{19}")



def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON: orjson refuses them, so the standard library must too.
    raise ValueError(f"{name} is not valid JSON")


try:
    import orjson

    JSONDecodeError: type[Exception] = orjson.JSONDecodeError

    def loads(data: bytes | str) -> Any:
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        if _LONG_DIGITS.search(raw):
            return json.loads(data, parse_constant=_no_constant)
        return orjson.loads(data)

    def dumps(obj: Any) -> bytes:
        # Non-str keys, numpy scalars and integers beyond 64 bits can appear: fall back rather than fail.
        try:
            return orjson.dumps(obj)
        except TypeError:
            return json.dumps(obj, default=str).encode()

except ImportError:  # pragma: no cover - orjson is optional
    JSONDecodeError = ValueError

    def loads(data: bytes | str) -> Any:
        return json.loads(data, parse_constant=_no_constant)

    def dumps(obj: Any) -> bytes:
        # ASCII escapes keep lone surrogates (which json.loads accepts) encodable.
        return json.dumps(obj, separators=(",", ":"), default=str).encode()


def too_deep(raw: bytes, obj: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``obj`` (parsed from ``raw``) nests arrays/objects more than ``limit`` levels deep.

    Iterative, so the check itself cannot hit the recursion limit; bodies with fewer
    brackets than the limit (nearly all) are answered by two byte counts.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    stack = [(obj, 1)] if isinstance(obj, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in (node.values() if isinstance(node, dict) else node):
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False
