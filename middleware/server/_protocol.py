"""uvicorn's HTTP protocol, answering requests it cannot parse in OpenAI's error shape.

A malformed request (a Content-Length of ``abc``, a bad header) never reaches the
app: uvicorn's parser rejects it and answers a plain-text 400, which OpenAI SDKs
cannot read. These subclasses keep uvicorn's parsers and only change that answer.
"""

from __future__ import annotations

import sys
from typing import Any

from ._json import dumps
from .errors import error_body

__all__ = ["OpenAIShapedHTTP"]


def _answer(protocol: Any) -> None:
    # Called from inside the parser's `except` block, so the parser's own words are at hand.
    exc = sys.exc_info()[1]
    detail = str(exc).splitlines()[0][:200] if exc is not None and str(exc) else "it could not be parsed"
    body = dumps(error_body(f"malformed HTTP request: {detail}", "invalid_request_error", None,
                            "malformed_request"))
    head = [b"HTTP/1.1 400 Bad Request\r\n"]
    for name, value in protocol.server_state.default_headers:
        head.append(name + b": " + value + b"\r\n")
    head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    protocol.transport.write(b"".join(head) + body)
    protocol.transport.close()


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools is optional; uvicorn's "auto" makes the same choice
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


class OpenAIShapedHTTP(_Base):  # type: ignore[misc, valid-type]
    """The protocol uvicorn's "auto" would pick, with an OpenAI-shaped 400 (module level: workers pickle it)."""

    def send_400_response(self, msg: str) -> None:
        _answer(self)
