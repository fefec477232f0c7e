"""Fast JSON when orjson is installed, the standard library otherwise."""

from __future__ import annotations

from typing import Any

__all__ = ["dumps", "loads", "JSONDecodeError"]

try:
    import orjson

    JSONDecodeError: type[Exception] = orjson.JSONDecodeError

    def loads(data: bytes | str) -> Any:
        return orjson.loads(data)

    def dumps(obj: Any) -> bytes:
        # Non-str keys and numpy scalars can appear in litellm objects: fall back rather than fail.
        try:
            return orjson.dumps(obj)
        except TypeError:
            import json

            return json.dumps(obj, default=str).encode()

except ImportError:  # pragma: no cover - orjson is optional
    import json

    JSONDecodeError = ValueError

    def loads(data: bytes | str) -> Any:
        return json.loads(data)

    def dumps(obj: Any) -> bytes:
        # ASCII escapes keep lone surrogates (which json.loads accepts) encodable.
        return json.dumps(obj, separators=(",", ":"), default=str).encode()
