"""The proxy's endpoints: chat completions, the demonstrations preview, models, profiles and health.

:class:`Proxy` holds what requests need (settings, profiles, aligners, the model router, the
forwarders, the aligner's worker threads); :data:`router` maps the paths to it. The app
(:mod:`middleware.server.app`) includes this router; another page is one more ``include_router``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from typing import Any, Awaitable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..data.registry import ProfileRegistry
from ..errors import SelfAlignError
from ..models.inprocess import text_completion
from ..options import AlignOptions
from ..retrieval.aligner import SelfAligner
from ..retrieval.cache import AlignerCache
from ..retrieval.demonstration import Selection
from ..retrieval.relevance import ALIGNMENT_OFF
from ..retrieval.signature import HEADER as SIGNATURE_HEADER, signature
from . import access
from ._json import dumps
from ._text import clip, printable
from .config import ServerConfig, Upstream
from .errors import ProxyError, bad_request, from_selfalign
from .local_params import check_local_params
from .offload import AlignWorkers, default_workers
from .routing import ModelRouter, align_key, split_model_suffix
from .schema import CHAT_REQUEST, DEMONSTRATIONS_REQUEST, ERROR_RESPONSES, TEXT_REQUEST
from .upstream import Forwarders

__all__ = ["Proxy", "router", "DEMOS_HEADER", "LANGUAGE_HEADER", "RELEVANCE_HEADER"]

log = logging.getLogger("selfalign.server")
DEMOS_HEADER = "X-SelfAlign-Demonstrations"
LANGUAGE_HEADER = "X-SelfAlign-Language"  # the language the demonstrations were picked in
RELEVANCE_HEADER = "X-SelfAlign-Relevance"  # why the request got demonstrations or none
# Readiness connects to each upstream at most this often (seconds), and waits this long for it.
_PROBE_EVERY, _PROBE_TIMEOUT = 5.0, 1.0


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
        self.workers = AlignWorkers(config.align_workers or default_workers(), config.align_budget)
        self.default_key = align_key(None, {}, None, config, self.aligners)
        if self.default_key is not None:
            self.aligners.get(self.default_key)  # warm, and surface errors now rather than per request
        self.ready = False
        self._warming: asyncio.Future | None = None
        self._probes: dict[str, tuple[float, bool]] = {}

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
        self.workers.close()

    # ---------------------------------------------------------------- request parts

    def authorize(self, request: Request) -> None:
        access.authorize(self._key, request)

    async def read_json(self, request: Request) -> dict:
        return await access.read_json(self.config, request)

    async def align(self, key: AlignOptions | None, messages: list) -> tuple[list, Selection, SelfAligner | None]:
        """(the aligned messages, what was injected and why, the aligner that did it; None when off)."""
        if key is None:
            return messages, Selection([], ALIGNMENT_OFF), None
        aligner = await self.aligners.aget(key)
        # All of the aligner's work (language, retrieval, embeddings) in a worker, never on the event loop.
        aligned, demos = await self.workers.run(aligner.align_with_demonstrations, messages)
        return aligned, demos, aligner

    def choose(self, options: Any, request: Request, suffix: str | None) -> AlignOptions | None:
        access.check_choices(options, request.headers, suffix)
        return align_key(options, request.headers, suffix, self.config, self.aligners)

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

    # --------------------------------------------------------------------- endpoints

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
        key = self.choose(body.pop("selfalign", None), request, suffix)
        upstream = self.router.route(model)
        if upstream.provider == "local":
            check_local_params(body)
        body["messages"], demos, aligner = await self.align(key, messages)
        if self.config.log_content:
            log.info("messages to %s: %s", upstream.name, dumps(body["messages"]).decode())
        headers = _decision_headers(demos, aligner)
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

    async def text(self, request: Request) -> Response:
        """``/v1/completions`` for the embedded models, unaligned (a raw prompt has no user message to align):
        the evaluator's ``--api-scoring echo`` and lm-eval-style scoring read prompt log-probabilities here."""
        self.authorize(request)
        body = await self.read_json(request)
        model, prompt = body.get("model"), body.get("prompt")
        if model is not None and not isinstance(model, str):
            raise bad_request("model must be a string", param="model")
        if body.get("stream"):
            raise bad_request("/v1/completions does not stream here; leave stream out", param="stream")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt:
            raise bad_request("prompt must be one non-empty string", param="prompt")
        echo = body.get("echo")
        if echo is not None and not isinstance(echo, bool):
            raise bad_request("echo must be true or false", param="echo")
        upstream = self.router.route(split_model_suffix(model)[0] if model else None)
        if upstream.provider != "local":
            raise bad_request(f"/v1/completions serves the embedded models only, not {clip(upstream.name)}: send chat "
                              "completions, or text completions to that provider itself", param="model")
        params = {k: body[k] for k in ("max_tokens", "temperature", "top_p", "seed", "stop", "logprobs")
                  if body.get(k) is not None}
        check_local_params(params, min_tokens=0)
        try:
            data = await self.until_done_or_gone(request, asyncio.to_thread(
                text_completion, upstream.upstream_model, {**params, "prompt": prompt, "echo": bool(echo)}))
        except _ClientGone:
            return Response(status_code=499)
        except SelfAlignError as e:
            raise from_selfalign(e) from None
        return Response(dumps(data), media_type="application/json", headers={DEMOS_HEADER: "0"})

    async def demonstrations(self, request: Request) -> Response:
        self.authorize(request)
        body = await self.read_json(request)
        unknown = set(body) - {"text", "messages", "model", "selfalign"}
        if unknown:
            first = sorted(unknown)[0]
            raise bad_request(f"unknown field(s) {', '.join(clip(u, 40) for u in sorted(unknown)[:5])}"
                              f"{' and more' if len(unknown) > 5 else ''}; send text or messages, and optionally "
                              f"model and selfalign", param=first[:64])
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
        key = self.choose(body.get("selfalign"), request, suffix)
        out: dict[str, Any] = {"object": "selfalign.demonstrations", "enabled": key is not None, "data": [],
                               "system_message": None, "relevance": ALIGNMENT_OFF.to_dict()}
        _, demos, aligner = await self.align(key, messages)
        if aligner is not None:
            out.update(country=key.country, language=demos[0].language if demos else aligner.language,
                       profile=aligner.profile.name, k=key.k, strategy=key.strategy,
                       data=[d.to_dict() for d in demos],
                       system_message=aligner.system_block(demos) if demos else None,
                       relevance=demos.relevance.to_dict())
        return Response(dumps(out), media_type="application/json", headers=_decision_headers(demos, aligner))

    def models(self, request: Request) -> Response:
        self.authorize(request)
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "selfalign"} for name in self.router.names]
        return Response(dumps({"object": "list", "data": data}), media_type="application/json")

    def model(self, request: Request, model_id: str) -> Response:
        self.authorize(request)
        name = split_model_suffix(model_id)[0]
        if name not in self.router.names:
            raise ProxyError(404, f"unknown model {clip(model_id)}: this proxy serves {', '.join(self.router.names)}",
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

    async def readiness(self) -> JSONResponse:
        """200 when started and every upstream that can be checked answers a TCP connect; 503 otherwise.

        Upstreams with a base URL are checked (a connect, at most every few seconds); embedded models
        are checked by being loaded; providers reached through litellm without a base URL are not
        checked (``"reachable": null``), since only a paid call would tell.
        """
        if not self.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        ups = await asyncio.gather(*(self._upstream_state(u) for u in self.router.upstreams))
        ok = all(u["reachable"] is not False for u in ups)
        return JSONResponse({"status": "ready" if ok else "upstream_unreachable", "upstreams": ups},
                            status_code=200 if ok else 503)

    async def _upstream_state(self, up: Upstream) -> dict:
        if up.provider == "local":
            return {"name": up.name, "reachable": True, "checked": "loaded in process"}
        address = _address(up)
        if address is None:
            return {"name": up.name, "reachable": None, "checked": "not checked (provider reached through litellm)"}
        now = time.monotonic()
        seen = self._probes.get(up.name)
        if seen is None or now - seen[0] > _PROBE_EVERY:
            seen = self._probes[up.name] = (now, await _connects(*address))
        return {"name": up.name, "reachable": seen[1], "checked": "TCP connect"}


def _decision_headers(demos: Selection, aligner: SelfAligner | None) -> dict[str, str]:
    """How many demonstrations a request got, in which language, the relevance decision behind it, and
    (aligned) the signature of what chose them (retrieval/signature.py)."""
    headers = {DEMOS_HEADER: str(len(demos))}
    if demos and demos[0].language:
        headers[LANGUAGE_HEADER] = demos[0].language
    headers[RELEVANCE_HEADER] = demos.relevance.header()
    if aligner is not None:
        headers[SIGNATURE_HEADER] = signature(aligner, demos)
    return headers


def _address(up: Upstream) -> tuple[str, int] | None:
    try:
        url = up.base_url() if up.passthrough else up.api_base
    except Exception:
        return None
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return parts.hostname, port


async def _connects(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError, socket.gaierror):
        return False
    writer.close()
    return True


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise bad_request("messages must be a list of {'role': ..., 'content': ...} objects", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad_request(f"messages[{i}] must be an object with a string 'role'", param="messages")


def _describe(key: AlignOptions | None) -> str:
    if key is None:
        return "country=none"
    if key.profile:
        return f"profile={printable(key.profile, 64)}"
    return f"country={key.country}" + (f" language={key.language}" if key.language else "")


async def _disconnected(request: Request) -> None:
    # The body is read, so the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


# ------------------------------------------------------------------------------ routes

router = APIRouter()


def _proxy(request: Request) -> Proxy:
    return request.app.state.proxy


_CHAT_DOC = dict(openapi_extra=CHAT_REQUEST, response_class=Response, responses={
    200: {"description": "A chat completion, or an SSE stream of chunks ending with 'data: [DONE]'",
          "content": {"application/json": {}, "text/event-stream": {}},
          "headers": {DEMOS_HEADER: {"schema": {"type": "integer"}},
                      RELEVANCE_HEADER: {"schema": {"type": "string"}, "description": "Why the request got "
                                         "demonstrations or none: reason; score; threshold"}}},
    404: {"description": "Unknown model (when the server lists models)"},
    429: {"description": "The upstream is rate limiting (Retry-After kept)"},
    502: {"description": "The upstream failed or is unreachable"},
    504: {"description": "The upstream timed out"}, **ERROR_RESPONSES})


@router.post("/v1/chat/completions", summary="Chat completion with self-alignment", **_CHAT_DOC)
async def chat_completions(request: Request) -> Response:
    return await _proxy(request).chat(request)


@router.post("/chat/completions", include_in_schema=False)
async def chat_completions_unversioned(request: Request) -> Response:
    return await _proxy(request).chat(request)


@router.post("/v1/completions", summary="Text completion for an embedded model (unaligned; echo scores the prompt)",
             openapi_extra=TEXT_REQUEST, response_class=Response, responses=dict(ERROR_RESPONSES))
async def completions(request: Request) -> Response:
    return await _proxy(request).text(request)


@router.post("/v1/selfalign/demonstrations", summary="Preview the demonstrations a message would get",
             openapi_extra=DEMONSTRATIONS_REQUEST, response_class=Response, responses=dict(ERROR_RESPONSES))
async def demonstrations(request: Request) -> Response:
    return await _proxy(request).demonstrations(request)


@router.get("/v1/models", summary="Models this proxy serves", response_class=Response,
            responses={401: ERROR_RESPONSES[401]})
async def models(request: Request) -> Response:
    return _proxy(request).models(request)


@router.get("/v1/models/{model_id:path}", summary="One model this proxy serves", response_class=Response,
            responses={401: ERROR_RESPONSES[401], 404: {"description": "Unknown model"}})
async def model(request: Request, model_id: str) -> Response:
    return _proxy(request).model(request, model_id)


@router.get("/v1/selfalign/profiles", summary="Registered profiles, countries and languages",
            response_class=Response, responses={401: ERROR_RESPONSES[401]})
async def profiles(request: Request) -> Response:
    return _proxy(request).profiles_listing(request)


@router.get("/health/liveness", summary="The process is up")
async def liveness() -> dict:
    return {"status": "alive"}


@router.get("/health/readiness", summary="Ready to serve: started, and the upstreams answer (503 otherwise)",
            responses={503: {"description": "Starting, stopping, or an upstream is unreachable"}})
async def readiness(request: Request) -> JSONResponse:
    return await _proxy(request).readiness()
