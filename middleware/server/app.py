"""The FastAPI application: the proxy's routes (:mod:`.handlers`), the offline ``/docs`` page, the
guards in front of them (:mod:`.guard`, :mod:`.access`), and errors in OpenAI's shape.

Another page joins with one ``app.include_router(...)`` in :func:`create_app`.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import SelfAlignError
from . import docs_page, guard, handlers, inspector
from ._text import printable
from .access import CloseUnreadBodies
from .config import ServerConfig
from .errors import ProxyError, bad_request, error_body, from_selfalign
from .handlers import Proxy

__all__ = ["create_app", "Proxy"]

log = logging.getLogger("selfalign.server")


def _error_response(err: ProxyError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers or None)


_HTTP_TYPES = {404: ("not_found", "no such endpoint"), 405: ("method_not_allowed", "method not allowed")}


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The ASGI app for ``config`` (validated now: bad profiles or countries raise SelfAlignError)."""
    proxy = Proxy(config or ServerConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await proxy.start()
        try:
            yield
        finally:
            await proxy.close()

    from .._version import __version__

    # docs_url/redoc_url None: FastAPI's pages load scripts from a CDN; docs_page serves /docs offline.
    app = FastAPI(title="selfalign proxy", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="OpenAI-compatible chat proxy that prepends a country's World Values Survey "
                              "demonstrations (Self-Alignment, Choenni & Shutova 2024) to the system message.")
    app.state.proxy = proxy
    guard.install(app, proxy.config)
    app.add_middleware(CloseUnreadBodies)  # added last: outermost, so it also sees the guard's refusals
    _install_error_handlers(app)
    app.include_router(handlers.router)
    app.include_router(docs_page.router)
    inspector.install(app, proxy)  # the web page at / (unless --no-ui) and the options listing it reads
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProxyError)
    async def _proxy_error(request: Request, exc: ProxyError) -> JSONResponse:
        # Path and message can hold client text: escaped and clipped, so they cannot forge or flood log lines.
        (log.warning if exc.status >= 500 else log.info)("%s %s -> %d %s", request.method,
                                                          printable(request.url.path, 200), exc.status,
                                                          printable(exc.message, 500))
        return _error_response(exc)

    @app.exception_handler(SelfAlignError)
    async def _selfalign_error(request: Request, exc: SelfAlignError) -> JSONResponse:
        return await _proxy_error(request, from_selfalign(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, default = _HTTP_TYPES.get(exc.status_code, (None, str(exc.detail)))
        message = f"{default}: {request.method} {printable(request.url.path, 200)}" if code else str(exc.detail)
        return JSONResponse(error_body(message, "invalid_request_error", None, code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return _error_response(bad_request(f"{where or 'request'}: {first.get('msg', 'invalid')}", param=where))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, printable(request.url.path, 200))
        return JSONResponse(error_body("internal error in the selfalign proxy", "server_error"), status_code=500)
