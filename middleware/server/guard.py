"""Who may call the proxy: the Host and Origin checks that keep web pages out.

A proxy on loopback with no API key answers anything that reaches its port, and a
browser will happily send a page's requests there: a "simple" cross-site POST needs
no preflight, and a DNS-rebinding page (a hostile name that resolves to 127.0.0.1)
can even read the answers. Like Jupyter and Ollama, the proxy therefore answers
only requests whose ``Host`` is a name it is known by, and refuses requests that a
browser marks with a foreign ``Origin`` unless that origin was allowed explicitly
(``--cors-origin``), in which case proper CORS headers (and preflights) are served.
The third leg, refusing bodies that are not ``application/json``, is in the app.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Callable

from ._json import dumps
from ._text import clip, printable
from .access import header_problem
from .config import ServerConfig
from .errors import error_body

__all__ = ["HostOriginGuard", "allowed_hosts", "install"]

log = logging.getLogger("selfalign.server")
_LOCAL_NAMES = {"localhost", "localhost.localdomain"}
_WILDCARD_BINDS = {"0.0.0.0", "::", ""}


def allowed_hosts(config: ServerConfig) -> frozenset[str] | None:
    """The Host names to accept (None: any).

    A wildcard bind (0.0.0.0, ::) serves names the proxy cannot know, and it requires an
    API key, which a hostile page does not have; so there only ``--allowed-host`` narrows.
    """
    configured = {h.lower().strip("[]") for h in config.allowed_hosts}
    if "*" in configured or (config.host in _WILDCARD_BINDS and not configured):
        return None
    return frozenset(configured | _LOCAL_NAMES | {config.host.lower().strip("[]")})


def _hostname(host: str) -> str:
    """The name part of a Host header (no port, no IPv6 brackets), lower-case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback_ip(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostOriginGuard:
    """ASGI middleware: 403 (OpenAI-shaped) for unknown Host names and foreign Origins."""

    def __init__(self, app: Callable, config: ServerConfig):
        self.app = app
        self.hosts = allowed_hosts(config)
        origins = {o.rstrip("/").lower() for o in config.cors_origins}
        self.any_origin = "*" in origins
        self.origins = frozenset(origins - {"*"})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = header_problem(scope["headers"])
        if too_big is not None:
            # uvicorn's parser takes headers of any size; without this a 4 MB header reaches the app.
            log.info("%s %s -> 431 %s", scope["method"], printable(scope["path"], 200), too_big[0])
            return await _send_json(send, 431, error_body(too_big[0], "invalid_request_error", too_big[1],
                                                          "header_too_large"))
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        problem = self._refusal(host, origin)
        if problem is None:
            return await self.app(scope, receive, send)
        # The path is percent-decoded client text: escaped, so a %0a cannot start a forged log line.
        log.info("%s %s -> 403 %s", scope["method"], printable(scope["path"], 200), printable(problem[0]))
        await _send_json(send, 403, error_body(problem[0], "invalid_request_error", problem[1], problem[2]))

    def _refusal(self, host: str | None, origin: str | None) -> tuple[str, str, str] | None:
        if host is not None and self.hosts is not None:
            name = _hostname(host)
            if name not in self.hosts and not _is_loopback_ip(name):
                return (f"Host {clip(host)} is not a name this proxy answers to ({', '.join(sorted(self.hosts))}"
                        f"): add it with --allowed-host if it is yours", "host", "host_not_allowed")
        if origin is None or self.any_origin:
            return None
        origin_l = origin.strip().rstrip("/").lower()
        same_origin = host is not None and origin_l.partition("://")[2] == host.strip().lower()
        if same_origin or origin_l in self.origins:
            return None
        return (f"cross-origin request from {clip(origin)} refused: web pages may call this proxy only from "
                f"origins allowed with --cors-origin", "origin", "origin_not_allowed")


def install(app: Any, config: ServerConfig) -> None:
    """Put the guard in front of a Starlette/FastAPI ``app``, with CORS headers when origins are configured."""
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        origins = ["*"] if "*" in config.cors_origins else [o.rstrip("/").lower() for o in config.cors_origins]
        # Bearer keys travel in a header, not in cookies: no credentials mode, so even '*' exposes no session.
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"], max_age=600,
                           expose_headers=["X-SelfAlign-Demonstrations", "X-SelfAlign-Relevance",
                                           "X-SelfAlign-Language", "X-SelfAlign-Signature", "Retry-After"])
    app.add_middleware(HostOriginGuard, config=config)  # added last: runs first


async def _send_json(send: Callable, status: int, body: Any) -> None:
    data = dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
