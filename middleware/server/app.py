"""The FastAPI application: an OpenAI-compatible chat endpoint that injects WVS demonstrations."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import SelfAlignError
from . import guard
from ._json import MAX_DEPTH, JSONDecodeError, dumps, loads, too_deep
from .config import ServerConfig
from .errors import ProxyError, bad_request, error_body, from_selfalign
from ..data.registry import ProfileRegistry
from ..options import AlignOptions
from ..retrieval.aligner import Selection
from ..retrieval.cache import AlignerCache
from ..retrieval.relevance import ALIGNMENT_OFF
from .routing import ModelRouter, align_key, split_model_suffix
from .schema import CHAT_REQUEST, DEMONSTRATIONS_REQUEST, ERROR_RESPONSES
from .upstream import Forwarders

__all__ = ["create_app", "Proxy"]

log = logging.getLogger("selfalign.server")
DEMOS_HEADER = "X-SelfAlign-Demonstrations"
LANGUAGE_HEADER = "X-SelfAlign-Language"  # the language the demonstrations were picked in
RELEVANCE_HEADER = "X-SelfAlign-Relevance"  # why the request got demonstrations or none
# Retrieval over a long message takes ~0.2 ms per KB; past this many characters it
# runs in a worker thread so one huge request does not stall every other one.
_THREAD_ABOVE_CHARS = 16_000


class _ClientGone(Exception):
    pass


class Proxy:
    """Everything a request needs: settings, profiles, aligners, the model router, the forwarders.

    Construction validates the configuration (profiles load, the default country
    has answers) so that ``selfalign serve`` fails before it binds a port.
    """

    def __init__(self, config: ServerConfig):
        self.config = config
        self._key = config.api_key.encode() if config.api_key else None
        self.profiles = ProfileRegistry(config.profiles, hint="see selfalign serve --config")
        self.aligners = AlignerCache(self.profiles)
        self.router = ModelRouter(config)
        for up in self.router.upstreams:
            if up.passthrough:
                up.base_url()  # a relayed upstream without a base URL is a start-up error, not a 400 per request
        self.forwarders = Forwarders(config.timeout, config.idle_timeout)
        self.default_key = align_key(None, {}, None, config, self.aligners)
        if self.default_key is not None:
            self.aligners.get(self.default_key)  # warm, and surface errors now rather than per request
        self.ready = False
        self._warming: asyncio.Future | None = None

    async def start(self) -> None:
        local = [u for u in self.router.upstreams if u.provider == "local"]
        if local:
            # Loading an in-process model takes seconds (a minute the first time): serve meanwhile
            # (requests wait for the load), and let readiness say 503 until it is done.  Started
            # before the forwarders so that the load overlaps litellm's import.
            self._warming = asyncio.ensure_future(self._load_local(local))
        await self.forwarders.start(self.router.upstreams)
        if not local:
            self.ready = True
        # Everything loaded so far (profiles, indexes, FastAPI, numpy) lives as long as the server:
        # exempt it from the cyclic GC, whose full collections would otherwise stall all requests at once.
        gc.collect()
        gc.freeze()

    async def _load_local(self, upstreams: list) -> None:
        from ..models.local_model import get_local_model

        try:
            for up in upstreams:
                await asyncio.to_thread(get_local_model, up.upstream_model, None, False)
        except Exception:
            log.exception("could not load the local model; requests to it will fail")
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        if self._warming is not None:
            self._warming.cancel()
        await self.forwarders.close()

    # ---------------------------------------------------------------- request parts

    def authorize(self, request: Request) -> None:
        if self._key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken must not tell an attacker how much of the key was right.
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._key):
            raise ProxyError(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                             code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    async def read_json(self, request: Request) -> dict:
        _check_content_type(request.headers.get("content-type"))
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise bad_request("invalid Content-Length header")
            if int(declared) > limit:
                raise _too_large(limit)
        chunks, size = [], 0
        try:
            # A client that trickles its body would otherwise hold a connection (and a task) forever.
            async with asyncio.timeout(self.config.body_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
        except TimeoutError:
            raise ProxyError(408, f"the request body did not arrive within {self.config.body_timeout:g} s "
                                  f"(--body-timeout)", code="request_timeout",
                             headers={"Connection": "close"}) from None
        raw = b"".join(chunks)
        if not raw.strip():
            raise bad_request("the request body is empty: send a JSON object")
        try:
            body = loads(raw)
        except (JSONDecodeError, ValueError, UnicodeDecodeError, RecursionError) as e:
            raise bad_request(f"the request body is not valid JSON: {str(e).splitlines()[0][:200]}") from None
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        if too_deep(raw, body):
            raise bad_request(f"the request body nests arrays/objects more than {MAX_DEPTH} levels deep; "
                              f"flatten it")
        return body

    async def align(self, key: AlignOptions | None, messages: list) -> tuple[list, Selection]:
        if key is None:
            return messages, Selection([], ALIGNMENT_OFF)
        aligner = await self.aligners.aget(key)
        if _query_chars(messages) > _THREAD_ABOVE_CHARS:
            return await asyncio.to_thread(aligner.align_with_demonstrations, messages)
        return aligner.align_with_demonstrations(messages)

    async def until_done_or_gone(self, request: Request, work: Awaitable[Any]) -> Any:
        """Await ``work``, cancelling it if the client disconnects first (an abandoned upstream call costs money).

        The work runs in this task and a watcher cancels it: one task per request rather than two.
        """
        me = asyncio.current_task()
        gone = False

        async def watch() -> None:
            nonlocal gone
            await _disconnected(request)
            gone = True
            me.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            return await work
        except asyncio.CancelledError:
            if gone:
                if hasattr(me, "uncancel"):  # Python 3.11+: this cancellation is handled here
                    me.uncancel()
                raise _ClientGone() from None
            raise
        finally:
            watcher.cancel()

    # --------------------------------------------------------------------- routes

    async def chat(self, request: Request) -> Response:
        started = time.perf_counter()
        self.authorize(request)
        body = await self.read_json(request)
        model, stream, messages = body.get("model"), body.get("stream"), body.get("messages")
        if model is not None and not isinstance(model, str):
            raise bad_request("model must be a string", param="model")
        if stream is not None and not isinstance(stream, bool):
            raise bad_request("stream must be true or false", param="stream")
        _check_messages(messages)
        suffix = None
        if model is not None:
            model, suffix = split_model_suffix(model)
        key = align_key(body.pop("selfalign", None), request.headers, suffix, self.config, self.aligners)
        upstream = self.router.route(model)
        body["messages"], demos = await self.align(key, messages)
        if self.config.log_content:
            log.info("messages to %s: %s", upstream.name, dumps(body["messages"]).decode())
        headers = _decision_headers(demos)
        forward = self.forwarders(upstream)
        try:
            if stream:
                chunks = await self.until_done_or_gone(request, forward.stream(upstream, body))
                response: Response = StreamingResponse(chunks, media_type="text/event-stream", headers={
                    **headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            else:
                data = await self.until_done_or_gone(request, forward.complete(upstream, body))
                if self.config.log_content:
                    log.info("answer from %s: %s", upstream.name, data.decode("utf-8", "replace"))
                response = Response(data, media_type="application/json", headers=headers)
        except _ClientGone:
            log.info("chat %s: client disconnected, upstream call cancelled", upstream.name)
            return Response(status_code=499)
        if log.isEnabledFor(logging.INFO):
            log.info("chat %s %s demos=%d%s %.1fms", upstream.name, _describe(key), len(demos),
                     " stream" if stream else "", (time.perf_counter() - started) * 1000)
        return response

    async def demonstrations(self, request: Request) -> Response:
        self.authorize(request)
        body = await self.read_json(request)
        unknown = set(body) - {"text", "messages", "model", "selfalign"}
        if unknown:
            raise bad_request(f"unknown field(s) {', '.join(sorted(unknown))}; send text or messages, and "
                              f"optionally model and selfalign", param=sorted(unknown)[0])
        text, messages, model = body.get("text"), body.get("messages"), body.get("model")
        if text is not None and not isinstance(text, str):
            raise bad_request("text must be a string", param="text")
        if model is not None and not isinstance(model, str):
            raise bad_request("model must be a string", param="model")
        if text is None:
            _check_messages(messages)
            messages = list(messages)
        else:
            messages = [{"role": "user", "content": text}]
        suffix = split_model_suffix(model)[1] if model else None
        key = align_key(body.get("selfalign"), request.headers, suffix, self.config, self.aligners)
        out: dict[str, Any] = {"object": "selfalign.demonstrations", "enabled": key is not None, "data": [],
                               "system_message": None, "relevance": ALIGNMENT_OFF.to_dict()}
        _, demos = await self.align(key, messages)
        if key is not None:
            aligner = await self.aligners.aget(key)
            out.update(country=key.country, language=demos[0].language if demos else aligner.language, profile=aligner.profile.name, k=key.k,
                       strategy=key.strategy, data=[d.to_dict() for d in demos],
                       system_message=aligner.system_block(demos) if demos else None,
                       relevance=demos.relevance.to_dict())
        return Response(dumps(out), media_type="application/json", headers=_decision_headers(demos))

    def models(self, request: Request) -> Response:
        self.authorize(request)
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "selfalign"} for name in self.router.names]
        return Response(dumps({"object": "list", "data": data}), media_type="application/json")

    def model(self, request: Request, model_id: str) -> Response:
        self.authorize(request)
        name = split_model_suffix(model_id)[0]
        if name not in self.router.names:
            raise ProxyError(404, f"unknown model {model_id!r}: this proxy serves {', '.join(self.router.names)}",
                             param="model", code="model_not_found")
        return Response(dumps({"id": name, "object": "model", "created": 0, "owned_by": "selfalign"}),
                        media_type="application/json")

    def profiles_listing(self, request: Request) -> Response:
        self.authorize(request)
        from ..data.answers import available_countries
        from ..data.probes import available_languages

        default = None if self.default_key is None else self.default_key.options()
        return Response(dumps({"object": "list", "data": self.profiles.describe(), "default": default,
                               "countries": available_countries(), "languages": available_languages()}),
                        media_type="application/json")


def _decision_headers(demos: Selection) -> dict[str, str]:
    """How many demonstrations a request got, in which language, and the relevance decision behind it."""
    headers = {DEMOS_HEADER: str(len(demos))}
    if demos and demos[0].language:
        headers[LANGUAGE_HEADER] = demos[0].language
    headers[RELEVANCE_HEADER] = demos.relevance.header()
    return headers


def _too_large(limit: int) -> ProxyError:
    return ProxyError(413, f"the request body is larger than the limit of {limit} bytes (--max-body-bytes)",
                      code="request_too_large")


def _check_content_type(value: str | None) -> None:
    # Browsers send text/plain (and Blob bodies with no type) cross-site without a preflight:
    # insisting on JSON makes every cross-site call a preflighted one, which the guard answers.
    if value is None or value.partition(";")[0].strip().lower() != "application/json":
        got = f"{value[:100]!r}" if value else "none"
        raise ProxyError(415, f"Content-Type must be application/json (got {got})", param="content-type",
                         code="unsupported_media_type")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise bad_request("messages must be a list of {'role': ..., 'content': ...} objects", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad_request(f"messages[{i}] must be an object with a string 'role'", param="messages")


def _query_chars(messages: list) -> int:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return len(content)
            if isinstance(content, list):
                return sum(len(p.get("text") or "") for p in content if isinstance(p, dict)
                           and isinstance(p.get("text"), str))
            return 0
    return 0


def _describe(key: AlignOptions | None) -> str:
    if key is None:
        return "country=none"
    if key.profile:
        return f"profile={key.profile}"
    return f"country={key.country}" + (f" language={key.language}" if key.language else "")


async def _disconnected(request: Request) -> None:
    # The body is read, so the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


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

    from .. import __version__

    app = FastAPI(title="selfalign proxy", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible chat proxy that prepends a country's World Values Survey "
                              "demonstrations (Self-Alignment, Choenni & Shutova 2024) to the system message.")
    app.state.proxy = proxy
    guard.install(app, proxy.config)

    @app.exception_handler(ProxyError)
    async def _proxy_error(request: Request, exc: ProxyError) -> JSONResponse:
        (log.warning if exc.status >= 500 else log.info)("%s %s -> %d %s", request.method, request.url.path,
                                                          exc.status, exc.message)
        return _error_response(exc)

    @app.exception_handler(SelfAlignError)
    async def _selfalign_error(request: Request, exc: SelfAlignError) -> JSONResponse:
        return await _proxy_error(request, from_selfalign(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, default = _HTTP_TYPES.get(exc.status_code, (None, str(exc.detail)))
        message = f"{default}: {request.method} {request.url.path}" if code else str(exc.detail)
        return JSONResponse(error_body(message, "invalid_request_error", None, code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return _error_response(bad_request(f"{where or 'request'}: {first.get('msg', 'invalid')}", param=where))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal error in the selfalign proxy", "server_error"), status_code=500)

    chat_doc = dict(openapi_extra=CHAT_REQUEST, response_class=Response, responses={
        200: {"description": "A chat completion, or an SSE stream of chunks ending with 'data: [DONE]'",
              "content": {"application/json": {}, "text/event-stream": {}},
              "headers": {DEMOS_HEADER: {"schema": {"type": "integer"}},
                          RELEVANCE_HEADER: {"schema": {"type": "string"}, "description": "Why the request got "
                                             "demonstrations or none: reason; score; threshold"}}},
        404: {"description": "Unknown model (when the server lists models)"},
        429: {"description": "The upstream is rate limiting (Retry-After kept)"},
        502: {"description": "The upstream failed or is unreachable"},
        504: {"description": "The upstream timed out"}, **ERROR_RESPONSES})

    @app.post("/v1/chat/completions", summary="Chat completion with self-alignment", **chat_doc)
    async def chat_completions(request: Request) -> Response:
        return await proxy.chat(request)

    @app.post("/chat/completions", include_in_schema=False)
    async def chat_completions_unversioned(request: Request) -> Response:
        return await proxy.chat(request)

    @app.post("/v1/selfalign/demonstrations", summary="Preview the demonstrations a message would get",
              openapi_extra=DEMONSTRATIONS_REQUEST, response_class=Response, responses=dict(ERROR_RESPONSES))
    async def demonstrations(request: Request) -> Response:
        return await proxy.demonstrations(request)

    @app.get("/v1/models", summary="Models this proxy serves", response_class=Response,
             responses={401: ERROR_RESPONSES[401]})
    async def models(request: Request) -> Response:
        return proxy.models(request)

    @app.get("/v1/models/{model_id:path}", summary="One model this proxy serves", response_class=Response,
             responses={401: ERROR_RESPONSES[401], 404: {"description": "Unknown model"}})
    async def model(request: Request, model_id: str) -> Response:
        return proxy.model(request, model_id)

    @app.get("/v1/selfalign/profiles", summary="Registered profiles, countries and languages",
             response_class=Response, responses={401: ERROR_RESPONSES[401]})
    async def profiles(request: Request) -> Response:
        return proxy.profiles_listing(request)

    @app.get("/health/liveness", summary="The process is up")
    async def liveness() -> dict:
        return {"status": "alive"}

    @app.get("/health/readiness", summary="Ready to serve (503 while starting)",
             responses={503: {"description": "Starting or stopping"}})
    async def readiness() -> JSONResponse:
        if proxy.ready:
            return JSONResponse({"status": "ready", "upstreams": [u.name for u in proxy.router.upstreams]})
        return JSONResponse({"status": "starting"}, status_code=503)

    return app
