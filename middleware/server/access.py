"""Who may call, and what one request may carry: the API key, the body (type, size, deadline, JSON values),
header sizes, the sizes of the ``selfalign`` choices, and closing connections whose body was refused unread.

Every limit answers in OpenAI's error shape before any work is done for the request, and nothing a
client sent is repeated longer than :data:`~middleware.server._text.ECHO_CHARS` characters.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any, Callable, Mapping

from fastapi import Request

from ._json import MAX_DEPTH, _InvalidValue, JSONDecodeError, loads, too_deep
from ._text import ECHO_CHARS, clip
from .config import ServerConfig
from .errors import ProxyError, bad_request

__all__ = ["authorize", "read_json", "check_choices", "CloseUnreadBodies", "header_problem",
           "MAX_HEADER_BYTES", "MAX_HEADERS_BYTES", "MAX_CHOICE_CHARS"]

MAX_HEADER_BYTES = 8192
"""Largest single header value (uvicorn's parser sets no limit; 431 above it)."""
MAX_HEADERS_BYTES = 65536
"""Largest total of all header names and values of a request."""
MAX_CHOICE_CHARS = ECHO_CHARS
"""Longest country, language, profile, strategy or field name a request may choose by (the longest English
country name has 52 characters); longer values are refused before they are looked up or echoed."""


def authorize(key: bytes | None, request: Request) -> None:
    if key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken must not tell an attacker how much of the key was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key):
        raise ProxyError(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                         code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


async def read_json(config: ServerConfig, request: Request) -> dict:
    """The body as a JSON object, within the size limit and the body deadline; every number finite,
    every string valid Unicode (400 naming the field otherwise)."""
    _check_content_type(request.headers.get("content-type"))
    limit = config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad_request("invalid Content-Length header")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks, size = [], 0
    try:
        # A client that trickles its body would otherwise hold a connection (and a task) forever.
        async with asyncio.timeout(config.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise ProxyError(408, f"the request body did not arrive within {config.body_timeout:g} s "
                              f"(--body-timeout)", code="request_timeout",
                         headers={"Connection": "close"}) from None
    raw = b"".join(chunks)
    if not raw.strip():
        raise bad_request("the request body is empty: send a JSON object")
    try:
        body = loads(raw)
    except _InvalidValue as e:
        raise bad_request(str(e), param=e.param) from None
    except (JSONDecodeError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise bad_request(f"the request body is not valid JSON: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    if too_deep(raw, body):
        raise bad_request(f"the request body nests arrays/objects more than {MAX_DEPTH} levels deep; flatten it")
    return body


def check_choices(options: Any, headers: Mapping[str, str], suffix: str | None) -> None:
    """Refuse over-long ``selfalign`` field names and values, ``X-SelfAlign-*`` headers and ``@country``
    suffixes before they are looked up: an unknown value is echoed in the 400 (and its close matches
    searched), so a megabyte of "country" would cost a megabyte of answer and log and seconds of CPU."""
    if isinstance(options, dict):
        if len(options) > 32:
            raise bad_request(f"selfalign has {len(options)} fields; it takes a handful (country, language, "
                              f"profile, k, strategy, ...)", param="selfalign")
        for name, value in options.items():
            if len(name) > MAX_CHOICE_CHARS:
                raise bad_request(f"unknown selfalign field {clip(name)} ({len(name)} characters)", param="selfalign")
            if isinstance(value, str) and len(value) > MAX_CHOICE_CHARS:
                raise _too_long(f"selfalign.{name}", value, name)
    for name, value in headers.items():
        if name.lower().startswith("x-selfalign-") and len(value) > MAX_CHOICE_CHARS:
            raise _too_long(f"header {name}", value, name.lower())
    if suffix is not None and len(suffix) > MAX_CHOICE_CHARS:
        raise _too_long("the model's @country suffix", suffix, "model")


def _too_long(what: str, value: str, param: str) -> ProxyError:
    return bad_request(f"{what} is {len(value)} characters long (at most {MAX_CHOICE_CHARS}): {clip(value)}",
                       param=param)


def header_problem(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """(message, param) when a header value or all headers together are over the limits, else None."""
    total = 0
    for name, value in headers:
        total += len(name) + len(value)
        if len(value) > MAX_HEADER_BYTES:
            shown = clip(name.decode("latin-1"), 40)
            return (f"header {shown} is {len(value)} bytes long; header values may be at most {MAX_HEADER_BYTES} "
                    f"bytes", name.decode("latin-1")[:40].lower())
    if total > MAX_HEADERS_BYTES:
        return f"the request headers total {total} bytes; at most {MAX_HEADERS_BYTES} are accepted", "headers"
    return None


def _too_large(limit: int) -> ProxyError:
    return ProxyError(413, f"the request body is larger than the limit of {limit} bytes (--max-body-bytes)",
                      code="request_too_large")


def _check_content_type(value: str | None) -> None:
    # Browsers send text/plain (and Blob bodies with no type) cross-site without a preflight:
    # insisting on JSON makes every cross-site call a preflighted one, which the guard answers.
    if value is None or value.partition(";")[0].strip().lower() != "application/json":
        got = clip(value, 100) if value else "none"
        raise ProxyError(415, f"Content-Type must be application/json (got {got})", param="content-type",
                         code="unsupported_media_type")


class CloseUnreadBodies:
    """ASGI middleware: a response sent before the request's body was read (a 401, 403, 404, 413, 415, 431
    refusal) closes the connection.

    Keeping it alive would make the server read, and wait for, the rest of the refused body: a
    client trickling one byte a second would hold the connection long past ``--body-timeout``.
    """

    def __init__(self, app: Callable):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not _has_body(scope["headers"]):
            return await self.app(scope, receive, send)
        done = False

        async def tracked_receive() -> dict:
            nonlocal done
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        async def closing_send(message: dict) -> None:
            if message["type"] == "http.response.start" and not done:
                headers = [(n, v) for n, v in message.get("headers", ()) if n.lower() != b"connection"]
                message = {**message, "headers": headers + [(b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracked_receive, closing_send)


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False
