"""Fast JSON when orjson is installed, the standard library otherwise.

Two promises the proxy makes about request bodies live here: numbers pass through
exactly (orjson turns integers beyond 64 bits into floats, so such bodies are parsed
by the standard library, whose ints are unbounded), and nesting is bounded
(:data:`MAX_DEPTH`), because copying and re-encoding a deeply nested body recurses.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["dumps", "loads", "JSONDecodeError", "MAX_DEPTH", "too_deep"]

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a request body (tool schemas need ~10)."""

# 19 digits in a row may be an integer outside [-2**63, 2**64): a cheap, safe over-approximation
# (digits inside strings also match; the standard library then parses that body, slower but exact).
# bytes.translate + find is ~12x faster than the regex \d{19}.
_DIGIT_MARKS = bytes(1 if 0x30 <= b <= 0x39 else 0 for b in range(256))
_LONG_RUN = b"\x01" * 19


def _long_digit_run(raw: bytes) -> bool:
    return _LONG_RUN in raw.translate(_DIGIT_MARKS)



class _InvalidValue(ValueError):
    """Valid JSON syntax, but a value no JSON encoder can send on: a lone surrogate or an infinite number.

    ``param`` names where it is (``messages[0].content``), so that the 400 can say which field to fix.
    """

    def __init__(self, param: str, what: str):
        super().__init__(f"{param}: {what}")
        self.param = param
        self.what = what


def _check_values(obj: Any) -> None:
    """Raise :class:`_InvalidValue` for the first lone surrogate or non-finite float in ``obj``.

    Only the standard library's parser lets these through (a 19-digit number switches to it, see
    :func:`loads`): "\\udfff" decodes to a lone surrogate the embedder cannot encode, and ``1e999`` to
    ``inf``, which would reach the upstream as ``Infinity`` (not JSON) or ``null``. Iterative, like :func:`too_deep`.
    """
    todo: list[tuple[str, Any]] = [("", obj)]  # a stack: children pushed last-first, so the first bad value wins
    while todo:
        path, node = todo.pop()
        kind = type(node)
        if kind is dict:
            children = []
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if _SURROGATE.search(key):
                    raise _InvalidValue(_escape_path(where), "a field name holds a lone UTF-16 surrogate (\\ud800-"
                                                            "\\udfff without its pair): send valid Unicode")
                children.append((where, value))
            todo.extend(reversed(children))
        elif kind is list:
            todo.extend((f"{path}[{i}]", node[i]) for i in range(len(node) - 1, -1, -1))
        elif kind is str:
            if _SURROGATE.search(node):
                raise _InvalidValue(_escape_path(path), "holds a lone UTF-16 surrogate (\\ud800-\\udfff without its "
                                                       "pair): send valid Unicode")
        elif kind is float and not math.isfinite(node):
            raise _InvalidValue(_escape_path(path), "is a number too large for a 64-bit float (it overflows to "
                                                   "infinity): send a finite number")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_path(path: str) -> str:
    # A field name is client text: the path goes into the error and the log, so keep it short and printable.
    from ._text import printable

    return printable(path, 200) or "body"


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON: orjson refuses them, so the standard library must too.
    raise ValueError(f"{name} is not valid JSON")


try:
    import orjson

    JSONDecodeError: type[Exception] = orjson.JSONDecodeError

    def loads(data: bytes | str) -> Any:
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        if _long_digit_run(raw):
            return _stdlib_loads(data)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as err:
            # orjson refuses lone surrogates and infinite numbers with a generic message; the standard
            # library's parse says which field holds one (or fails too, and orjson's error stands).
            failed = err
        try:
            obj = json.loads(data, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise failed from None
        _check_values(obj)
        raise failed

    def dumps(obj: Any) -> bytes:
        # Non-str keys, numpy scalars and integers beyond 64 bits can appear: fall back rather than fail.
        try:
            return orjson.dumps(obj)
        except TypeError:
            return json.dumps(obj, default=str).encode()

except ImportError:  # pragma: no cover - orjson is optional
    JSONDecodeError = ValueError

    def loads(data: bytes | str) -> Any:
        return _stdlib_loads(data)

    def dumps(obj: Any) -> bytes:
        # ASCII escapes keep lone surrogates (which json.loads accepts) encodable.
        return json.dumps(obj, separators=(",", ":"), default=str).encode()


def _stdlib_loads(data: bytes | str) -> Any:
    obj = json.loads(data, parse_constant=_no_constant)
    _check_values(obj)
    return obj


def too_deep(raw: bytes, obj: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``obj`` (parsed from ``raw``) nests arrays/objects more than ``limit`` levels deep.

    Iterative, so the check itself cannot hit the recursion limit; bodies with fewer
    brackets than the limit (nearly all) are answered by two byte counts.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    level, depth = ([obj] if isinstance(obj, (dict, list)) else []), 1
    while level:  # one nesting level per round
        if depth > limit:
            return True
        below: list = []
        for node in level:
            below += [c for c in (node.values() if type(node) is dict else node) if type(c) in _CONTAINERS]
        level, depth = below, depth + 1
    return False


_CONTAINERS = (dict, list)
