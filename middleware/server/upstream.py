"""Calling the upstream: a direct relay for OpenAI-compatible servers, litellm for every other provider.

Both forwarders raise :class:`ProxyError` for failures before the first byte of
the answer, so a streaming client still gets a proper status code; once a stream
has started, a failure becomes one SSE error event and the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

from ._json import dumps, loads
from .config import Upstream
from .errors import ProxyError, from_exception, from_upstream_status, sse_error

__all__ = ["Relay", "LiteLLMForwarder", "Forwarders"]

log = logging.getLogger("selfalign.server")
DONE = b"data: [DONE]\n\n"

# OpenAI chat parameters handed to litellm as keyword arguments. Anything else a
# client sends goes in extra_body: body fields must never reach litellm's own
# controls (api_base, api_key, mock_response, callbacks, ...).
_OPENAI_PARAMS = frozenset({
    "messages", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "max_tokens",
    "max_completion_tokens", "n", "presence_penalty", "response_format", "seed", "stop", "stream_options",
    "temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls", "user", "functions", "function_call",
    "modalities", "audio", "prediction", "reasoning_effort", "service_tier", "store", "web_search_options",
    "verbosity"})


class Relay:
    """Forwards the (aligned) request body as-is to an OpenAI-compatible ``/chat/completions``.

    Uses aiohttp: per request it costs a fifth of httpx's CPU, and the proxy's
    latency budget is a few milliseconds.
    """

    def __init__(self, timeout: float):
        self._timeout = timeout
        self._session: Any = None
        # url and headers, resolved once per upstream (upstreams live as long as the app)
        self._targets: dict[int, tuple[str, dict]] = {}

    async def start(self) -> None:
        import aiohttp

        # One pool for all requests; limit=0: the proxy, not the pool, decides concurrency.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(self._timeout, 30),
                                          sock_read=self._timeout),
            skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _args(self, up: Upstream, body: dict) -> tuple[str, bytes, dict]:
        target = self._targets.get(id(up))
        if target is None:
            headers = {"Content-Type": "application/json", "User-Agent": "selfalign-proxy"}
            key = up.key()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            target = self._targets[id(up)] = (up.base_url() + "/chat/completions", headers)
        body["model"] = up.upstream_model
        return target[0], dumps(body), target[1]

    async def complete(self, up: Upstream, body: dict) -> bytes:
        url, data, headers = self._args(up, body)
        try:
            async with self._session.post(url, data=data, headers=headers) as r:
                payload = await r.read()
                if r.status >= 400:
                    raise from_upstream_status(r.status, _try_loads(payload), r.headers)
                return payload
        except ProxyError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as e:  # connection refused/reset, timeouts, bad chunked encoding
            raise from_exception(e) from None

    async def stream(self, up: Upstream, body: dict) -> AsyncIterator[bytes]:
        url, data, headers = self._args(up, body)
        try:
            r = await self._session.post(url, data=data, headers=headers)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            raise from_exception(e) from None
        if r.status >= 400:
            try:
                payload = await r.read()
            except Exception:
                payload = b""
            finally:
                r.release()
            raise from_upstream_status(r.status, _try_loads(payload), r.headers)
        return self._relay(r)

    async def _relay(self, r: Any) -> AsyncIterator[bytes]:
        tail, clean = b"", False
        try:
            async for chunk in r.content.iter_any():
                tail = (tail + chunk)[-32:]
                yield chunk
            if b"[DONE]" in tail:
                clean = True
            else:
                # A connection closed cleanly but early is still a truncated answer.
                yield sse_error(ProxyError(502, "upstream error: the stream ended before [DONE]", "upstream_error",
                                           code="upstream_truncated"))
        except Exception as e:
            err = from_exception(e)
            log.warning("upstream stream failed after it started: %s", err.message)
            yield sse_error(err)
        finally:
            # Closing (not releasing) drops the connection, which is how an
            # upstream learns that a disconnected client's answer is unwanted.
            r.release() if clean else r.close()


class LiteLLMForwarder:
    """Any litellm provider (anthropic/, ollama/, local/, ...) via ``litellm.acompletion``."""

    def __init__(self, timeout: float):
        self._timeout = timeout
        self._litellm: Any = None
        self._extra: dict = {}

    async def start(self) -> None:
        # Importing litellm takes seconds; only servers with a litellm upstream pay for it.
        self._litellm = await asyncio.to_thread(_import_litellm)
        try:
            import litellm.responses.mcp.chat_completions_handler  # noqa: F401
        except ImportError:
            # Without the optional `mcp` package litellm fails every call that has
            # `tools` while looking for MCP tools; selfalign has none to offer.
            self._extra["_skip_mcp_handler"] = True

    async def close(self) -> None:
        pass

    def _kwargs(self, up: Upstream, body: dict) -> dict:
        kw: dict[str, Any] = {"extra_body": {}}
        for name, value in body.items():
            if name in _OPENAI_PARAMS:
                kw[name] = value
            elif name not in ("model", "stream"):
                kw["extra_body"][name] = value
        if isinstance(body.get("extra_body"), dict):  # never nested: flatten a client's own extra_body
            kw["extra_body"].pop("extra_body", None)
            kw["extra_body"].update(body["extra_body"])
        if not kw["extra_body"]:
            del kw["extra_body"]
        kw.update(up.params)
        kw.update(self._extra)
        kw.update(model=up.model, timeout=self._timeout, num_retries=0, max_retries=0)
        if up.api_base:
            kw["api_base"] = up.api_base
        key = up.key()
        if key:
            kw["api_key"] = key
        elif up.provider in ("openai", "hosted_vllm") and up.api_base:
            kw["api_key"] = "none"  # local OpenAI-compatible servers take any key; the SDK insists on one
        return kw

    async def complete(self, up: Upstream, body: dict) -> bytes:
        try:
            response = await self._litellm.acompletion(**self._kwargs(up, body))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            raise from_exception(e) from None
        return dumps(response.model_dump(exclude_none=True))

    async def stream(self, up: Upstream, body: dict) -> AsyncIterator[bytes]:
        try:
            stream = await self._litellm.acompletion(stream=True, **self._kwargs(up, body))
            it = stream.__aiter__()
            # Wait for the first chunk before answering 200, so early failures keep their status.
            first = await it.__anext__()
        except StopAsyncIteration:
            first, it, stream = None, None, None
        except asyncio.CancelledError:
            raise
        except Exception as e:
            raise from_exception(e) from None
        return self._relay(stream, it, first)

    async def _relay(self, stream: Any, it: Any, first: Any) -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield _sse(first)
                async for chunk in it:
                    yield _sse(chunk)
            yield DONE
        except Exception as e:
            err = from_exception(e)
            log.warning("upstream stream failed after it started: %s", err.message)
            yield sse_error(err)
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing a broken stream may fail again; nothing left to save
                    pass


class Forwarders:
    """Picks the relay or litellm per upstream; starts only what the configured upstreams need."""

    def __init__(self, timeout: float):
        self.relay = Relay(timeout)
        self.litellm = LiteLLMForwarder(timeout)
        self._started: set[str] = set()

    async def start(self, upstreams: list[Upstream]) -> None:
        if any(u.passthrough for u in upstreams):
            await self.relay.start()
            self._started.add("relay")
        if any(not u.passthrough for u in upstreams):
            await self.litellm.start()
            self._started.add("litellm")

    async def close(self) -> None:
        if "relay" in self._started:
            await self.relay.close()

    def __call__(self, up: Upstream) -> Relay | LiteLLMForwarder:
        return self.relay if up.passthrough else self.litellm


def _import_litellm() -> Any:
    from ..models.provider import import_litellm

    litellm = import_litellm()
    litellm.suppress_debug_info = True  # no "Give Feedback" banners on stderr for every upstream error
    return litellm


def _sse(chunk: Any) -> bytes:
    return b"data: " + dumps(chunk.model_dump(exclude_none=True)) + b"\n\n"


def _try_loads(payload: bytes) -> Any:
    try:
        return loads(payload)
    except Exception:
        return {"error": {"message": payload[:300].decode("utf-8", "replace")}}
