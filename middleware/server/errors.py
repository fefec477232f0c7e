"""Every error the proxy answers with, in OpenAI's shape, and the upstream-failure mapping.

Clients of the proxy are OpenAI SDKs, which read ``{"error": {"message", "type",
"param", "code"}}`` and the status code to decide what to raise and whether to
retry; so every failure, ours or the upstream's, ends up as a :class:`ProxyError`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ..errors import ModelError, PluginError, ProxyError, SelfAlignError
from ..models.provider_errors import carries_answer, is_timeout, retry_after
from ._json import dumps
from ._text import printable

__all__ = ["ProxyError", "bad_request", "error_body", "from_selfalign", "from_upstream_status",
           "from_exception", "sse_error", "scrub_address", "MAX_MESSAGE_CHARS"]

MAX_MESSAGE_CHARS = 2000
"""Longest error message answered: long enough for the list of valid countries, short enough that no
request can turn an echo into an amplifier."""


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    if param is not None and len(param) > 200:
        param = param[:200] + "…"
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def sse_error(err: ProxyError) -> bytes:
    """The event a stream ends with when the upstream fails after the 200 was sent."""
    return b"data: " + dumps(err.body()) + b"\n\n"


def from_selfalign(e: SelfAlignError) -> ProxyError:
    if isinstance(e, ProxyError):
        return e
    if isinstance(e, PluginError):  # the server's installation is broken, not the request
        return ProxyError(500, str(e), "server_error", param=e.param, code="plugin_error")
    if isinstance(e, ModelError):
        return ProxyError(502, _upstream_message(scrub_address(str(e))), "upstream_error", code="upstream_unavailable")
    # The messages of UnknownCountryError & co. already list the valid values.
    return ProxyError(400, str(e), param=getattr(e, "param", None), code=f"invalid_{e.param}" if e.param else None)


def bad_request(message: str, param: str | None = None) -> ProxyError:
    return ProxyError(400, message, param=param)


def _retry_after(headers: Any) -> dict[str, str]:
    value = retry_after(headers)
    return {"Retry-After": value} if value else {}


def _upstream_message(detail: str) -> str:
    return f"upstream error: {detail}" if detail else "upstream error"


def from_upstream_status(status: int, payload: Any, headers: Any = None) -> ProxyError:
    """Map an upstream HTTP error answer to ours (``headers``: the answer's, or the exception carrying them).

    429 keeps its status and Retry-After so SDK back-off works; 5xx becomes 502
    (the proxy is a gateway); 401/403 also become 502, because the client's key
    is selfalign's, not the upstream's, and "your key is wrong" would mislead it.
    Other 4xx are the client's request: passed on with the upstream's message.
    """
    message, etype, param, code = "", None, None, None
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or "")
        etype, param, code = err.get("type"), err.get("param"), err.get("code")
    elif isinstance(err, str):
        message = err
    elif isinstance(payload, dict) and isinstance(payload.get("detail"), str):
        message = payload["detail"]
    if status == 429:
        return ProxyError(429, _upstream_message(message), "rate_limit_error", param, code or "rate_limit_exceeded",
                          headers=_retry_after(headers))
    if status in (401, 403):
        return ProxyError(502, _upstream_message(f"the upstream rejected the proxy's credentials ({status})"),
                          "upstream_error", code="upstream_auth")
    if status == 408:
        return ProxyError(504, _upstream_message("upstream timed out"), "timeout_error", code="upstream_timeout")
    if 400 <= status < 500:
        return ProxyError(status, message or f"upstream answered {status}", etype or "invalid_request_error",
                          param, code)
    return ProxyError(502, _upstream_message(message or f"upstream answered {status}"), "upstream_error",
                      code="upstream_unavailable")


def from_exception(e: BaseException) -> ProxyError:
    """Map an exception raised while calling the upstream (litellm, aiohttp, asyncio) to ours."""
    if isinstance(e, ProxyError):
        return e
    if isinstance(e, SelfAlignError):
        return from_selfalign(e)
    if is_timeout(e):
        return ProxyError(504, "upstream timed out", "timeout_error", code="upstream_timeout")
    status = getattr(e, "status_code", None)
    if isinstance(status, int) and 400 <= status < 600 and carries_answer(e):
        message = str(getattr(e, "message", "") or e)
        return from_upstream_status(status, {"error": {"message": message}}, e)
    return ProxyError(502, _upstream_message(_short(e)), "upstream_error", code="upstream_unavailable")


def _short(e: BaseException) -> str:
    # Upstream messages can be long and can echo request data; the class and first line suffice.
    # The full line (with the upstream's address) goes to the proxy's log, never to the client.
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if text:
        log.warning("upstream call failed: %s: %s", type(e).__name__, printable(text, 500))
    return f"{type(e).__name__}: {scrub_address(text[:300])}" if text else type(e).__name__


log = logging.getLogger("selfalign.server")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|\b[\w-]+(?:\.[\w-]+)+|\b[\w-]*[A-Za-z][\w-]*):\d{1,5}\b")
_ADDRESS_TUPLE = re.compile(r"\('[^']*'(?:, \d+)+\)")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def scrub_address(text: str) -> str:
    """``text`` without URLs, host:port pairs and IP addresses: where the upstream lives is the operator's
    business, not every client's (the 502 says what failed; the log says where)."""
    text = _ADDRESS_TUPLE.sub("<upstream>", text)  # Python's ('127.0.0.1', 8000) form
    text = _URL.sub("<upstream>", text)
    text = _HOST_PORT.sub("<upstream>", text)
    return _IPV4.sub("<upstream>", text)
