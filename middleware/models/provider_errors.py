"""What a provider's exception means, decided by its type: a timeout, whether it carries the upstream's
answer, whether a retry may help, and how long the upstream asked us to wait (Retry-After).

The proxy (:mod:`middleware.server.errors`) and the evaluator (:mod:`middleware.eval.backends`) both
ask here. The exception classes come from the optional packages (litellm, openai, aiohttp), looked
up only among the modules already imported: an exception of a package that was never imported
cannot have been raised, and nothing here imports litellm (seconds) to find out.
"""

from __future__ import annotations

import asyncio
import sys
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any

__all__ = ["is_timeout", "carries_answer", "is_retryable", "retry_after", "retry_after_seconds"]


def _classes(*paths: str) -> tuple[type, ...]:
    """The classes at "module:Name" paths whose module is imported; the others are left out."""
    out = []
    for path in paths:
        module_name, name = path.split(":")
        module = sys.modules.get(module_name)
        cls = getattr(module, name, None) if module is not None else None
        if isinstance(cls, type):
            out.append(cls)
    return tuple(out)


def is_timeout(e: BaseException) -> bool:
    """The upstream (or the way to it) took too long."""
    return isinstance(e, (asyncio.TimeoutError, TimeoutError) + _classes(
        "openai:APITimeoutError", "litellm.exceptions:Timeout", "aiohttp:ServerTimeoutError",
        "aiohttp:SocketTimeoutError", "httpx:TimeoutException"))


def carries_answer(e: BaseException) -> bool:
    """False for failures that never got an answer from the upstream (connection errors, litellm's
    mid-stream fallback), whose status code is litellm's own rather than the upstream's."""
    return not isinstance(e, _classes("openai:APIConnectionError", "litellm.exceptions:APIConnectionError",
                                      "litellm.exceptions:MidStreamFallbackError"))


def is_retryable(e: BaseException) -> bool:
    """A later attempt may succeed: rate limits, timeouts, connection failures, 5xx."""
    return is_timeout(e) or isinstance(e, _classes(
        "openai:RateLimitError", "openai:APIConnectionError", "openai:InternalServerError",
        "litellm.exceptions:RateLimitError", "litellm.exceptions:APIConnectionError",
        "litellm.exceptions:ServiceUnavailableError", "litellm.exceptions:InternalServerError"))


def _get(headers: Any, name: str) -> Any:
    try:
        return headers.get(name) or headers.get(name.lower())
    except AttributeError:
        return None


def retry_after(source: Any) -> str | None:
    """The Retry-After value, as sent, of a headers mapping or of an exception that carries headers
    (``headers``, ``litellm_response_headers`` or ``response.headers``); None when there is none."""
    if isinstance(source, BaseException):
        candidates = [getattr(source, "headers", None), getattr(source, "litellm_response_headers", None),
                      getattr(getattr(source, "response", None), "headers", None)]
    else:
        candidates = [source]
    for headers in candidates:
        value = _get(headers, "Retry-After") if headers else None
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def retry_after_seconds(source: Any) -> float | None:
    """:func:`retry_after` in seconds (a number of seconds or an HTTP date); None when absent or unreadable."""
    value = retry_after(source)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
