"""Calling the upstream: a direct relay for OpenAI-compatible servers, litellm for every other provider,
and in-process ``local/`` models called directly.

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
    latency budget is a few milliseconds. Redirects are not followed: a 307 would
    re-send the demonstrations and the user's messages to wherever it points.
    """

    def __init__(self, timeout: float, idle_timeout: float | None = None):
        self._timeout = timeout
        self._idle = idle_timeout or timeout
        self._session: Any = None
        # url and headers, resolved once per upstream (upstreams live as long as the app)
        self._targets: dict[int, tuple[str, dict]] = {}

    async def start(self) -> None:
        import aiohttp

        # One pool for all requests; limit=0: the proxy, not the pool, decides concurrency.
        # Deadlines are the forwarder's own (a whole answer; between stream events), not per socket read,
        # which an upstream trickling one byte at a time would never trip.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(self._timeout, 30)),
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
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                async with self._session.post(url, data=data, headers=headers, allow_redirects=False) as r:
                    payload = await r.read()
                    if r.status >= 300:
                        raise _refused(r, payload)
                    return _checked(r, payload)
        except (ProxyError, asyncio.CancelledError):
            raise
        except Exception as e:  # connection refused/reset, connect timeout, bad chunked encoding
            if deadline.expired():
                raise _timed_out(f"no complete answer within {self._timeout:g} s (--timeout)") from None
            raise from_exception(e) from None

    async def stream(self, up: Upstream, body: dict) -> AsyncIterator[bytes]:
        url, data, headers = self._args(up, body)
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                r = await self._session.post(url, data=data, headers=headers, allow_redirects=False)
                payload = await r.read() if r.status >= 300 else b""
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if deadline.expired():
                raise _timed_out(f"the stream did not start within {self._timeout:g} s (--timeout)") from None
            raise from_exception(e) from None
        if r.status >= 300:
            r.release()
            raise _refused(r, payload)
        ctype = r.headers.get("Content-Type", "")
        if ctype and not ctype.lower().startswith("text/event-stream"):
            r.close()
            raise ProxyError(502, f"upstream error: it answered a streaming request with Content-Type "
                                  f"{ctype[:100]!r}, not text/event-stream", "upstream_error",
                             code="upstream_not_a_stream")
        return self._relay(r, deadline.when())

    async def _relay(self, r: Any, deadline: float) -> AsyncIterator[bytes]:
        """Upstream events, passed on whole.

        Only complete events (up to a blank line) are forwarded, so that when the upstream breaks
        off mid-event the error event starts on a fresh event boundary and SDKs parse it as an
        error rather than choke on half a JSON object. The first event must come by the
        request's deadline; each later one within the idle timeout of the previous one.
        """
        loop = asyncio.get_running_loop()
        it = r.content.iter_any().__aiter__()
        pending, last, clean = b"", b"", False
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await it.__anext__()
                except StopAsyncIteration:
                    break
                pending += chunk
                end = _event_end(pending)
                if end:
                    deadline = loop.time() + self._idle
                    last, pending = pending[:end], pending[end:]
                    yield last
                elif len(pending) > _MAX_EVENT:
                    raise ProxyError(502, f"upstream error: more than {_MAX_EVENT} bytes without an event boundary "
                                          f"(not an event stream)", "upstream_error", code="upstream_not_a_stream")
            if (last + pending).rstrip().endswith(b"[DONE]"):
                clean = True
                if pending.strip():
                    yield pending.rstrip() + b"\n\n"
            else:
                # A connection closed cleanly but early is still a truncated answer.
                where = " in the middle of an event" if pending.strip() else ""
                yield sse_error(ProxyError(502, f"upstream error: the stream ended{where} before [DONE]",
                                           "upstream_error", code="upstream_truncated"))
        except TimeoutError:
            err = _timed_out(f"no stream event for {self._idle:g} s (--stream-idle-timeout)" if last else
                             f"the stream did not start within {self._timeout:g} s (--timeout)")
            log.warning("upstream stream failed after it started: %s", err.message)
            yield sse_error(err)
        except Exception as e:
            err = from_exception(e)
            log.warning("upstream stream failed after it started: %s", err.message)
            yield sse_error(err)
        finally:
            # Closing (not releasing) drops the connection, which is how an
            # upstream learns that a disconnected client's answer is unwanted.
            r.release() if clean else r.close()


# Chat events are a few hundred bytes; a megabyte without a blank line is not an event stream.
_MAX_EVENT = 1 << 20


def _event_end(buf: bytes) -> int:
    """Where the last complete SSE event in ``buf`` ends (0: none yet)."""
    lf, crlf = buf.rfind(b"\n\n"), buf.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _timed_out(detail: str) -> ProxyError:
    return ProxyError(504, f"upstream timed out: {detail}", "timeout_error", code="upstream_timeout")


def _checked(r: Any, payload: bytes) -> bytes:
    """``payload`` when it is a JSON object, else a 502: a client SDK fed an HTML error page or half a body
    with status 200 raises a decoding error of its own, which it neither reports nor retries like an API error."""
    try:
        ok = isinstance(loads(payload), dict)
    except Exception:
        ok = False
    if not ok:
        ctype = r.headers.get("Content-Type") or "none"
        raise ProxyError(502, f"upstream error: it answered {r.status} with a body that is not a JSON object "
                              f"(Content-Type {ctype[:100]!r}, {len(payload)} bytes)", "upstream_error",
                         code="upstream_invalid_response")
    return payload


def _refused(r: Any, payload: bytes) -> ProxyError:
    if r.status < 400:
        location = r.headers.get("Location") or "nowhere"
        return ProxyError(502, f"upstream error: it answered {r.status} (a redirect to {location[:200]!r}), which "
                               f"the proxy does not follow; set api_base to the final address", "upstream_error",
                          code="upstream_redirect")
    return from_upstream_status(r.status, _try_loads(payload), r.headers)


class LiteLLMForwarder:
    """Any litellm provider (anthropic/, ollama/, ...) via ``litellm.acompletion``, and in-process
    ``local/`` models via :func:`middleware.models.inprocess.acompletion`, the same call without litellm
    (the same model code as litellm's ``local/`` provider)."""

    def __init__(self, timeout: float, idle_timeout: float | None = None):
        self._timeout = timeout
        self._idle = idle_timeout or timeout
        self._litellm: Any = None
        self._extra: dict = {}

    async def start(self, litellm: bool = True) -> None:
        if not litellm:
            return
        # Importing litellm takes seconds and about 150 MB; only servers with a litellm upstream pay for it.
        self._litellm = await asyncio.to_thread(_import_litellm)
        try:
            import litellm.responses.mcp.chat_completions_handler  # noqa: F401
        except ImportError:
            # Without the optional `mcp` package litellm fails every call that has
            # `tools` while looking for MCP tools; selfalign has none to offer.
            self._extra["_skip_mcp_handler"] = True

    async def close(self) -> None:
        pass

    def _acompletion(self, up: Upstream) -> Any:
        if up.in_process:
            from ..models.inprocess import acompletion

            return acompletion
        return self._litellm.acompletion

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
        deadline = asyncio.timeout(self._timeout)  # litellm's own timeout is per read
        try:
            async with deadline:
                response = await self._acompletion(up)(**self._kwargs(up, body))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if deadline.expired():
                raise _timed_out(f"no complete answer within {self._timeout:g} s (--timeout)") from None
            raise from_exception(e) from None
        return dumps(_plain(response))

    async def stream(self, up: Upstream, body: dict) -> AsyncIterator[bytes]:
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                stream = await self._acompletion(up)(stream=True, **self._kwargs(up, body))
                it = stream.__aiter__()
                # Wait for the first chunk before answering 200, so early failures keep their status.
                first = await it.__anext__()
        except StopAsyncIteration:
            first, it, stream = None, None, None
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if deadline.expired():
                raise _timed_out(f"the stream did not start within {self._timeout:g} s (--timeout)") from None
            raise from_exception(e) from None
        return self._relay(stream, it, first)

    async def _relay(self, stream: Any, it: Any, first: Any) -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield _sse(first)
                while True:
                    try:
                        async with asyncio.timeout(self._idle):  # only around the wait, never around a yield
                            chunk = await it.__anext__()
                    except StopAsyncIteration:
                        break
                    yield _sse(chunk)
            yield DONE
        except TimeoutError:
            err = _timed_out(f"no stream event for {self._idle:g} s (--stream-idle-timeout)")
            log.warning("upstream stream failed after it started: %s", err.message)
            yield sse_error(err)
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

    def __init__(self, timeout: float, idle_timeout: float | None = None):
        self.relay = Relay(timeout, idle_timeout)
        self.litellm = LiteLLMForwarder(timeout, idle_timeout)
        self._started: set[str] = set()

    async def start(self, upstreams: list[Upstream]) -> None:
        if any(u.passthrough for u in upstreams):
            await self.relay.start()
            self._started.add("relay")
        if any(not u.passthrough for u in upstreams):
            await self.litellm.start(litellm=any(not u.passthrough and not u.in_process for u in upstreams))
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


def _plain(obj: Any) -> Any:
    """litellm answers with pydantic models, in-process models with plain dicts."""
    return obj if isinstance(obj, dict) else obj.model_dump(exclude_none=True)


def _sse(chunk: Any) -> bytes:
    return b"data: " + dumps(_plain(chunk)) + b"\n\n"


def _try_loads(payload: bytes) -> Any:
    try:
        return loads(payload)
    except Exception:
        return {"error": {"message": payload[:300].decode("utf-8", "replace")}}
