"""OpenAI chat completions from an in-process model, without litellm.

The one implementation of chat on a :class:`~middleware.models.runtime.Runtime`: parameters, the
chat template, whitespace handling, and streaming from a worker thread.  Two adapters use it: the
litellm ``local/`` provider (:mod:`middleware.models.provider`, for the chat, the evaluator and
LiteLLM Proxy) and the proxy's direct path (:func:`acompletion`), which spares ``selfalign serve``
the seconds and the memory that importing litellm costs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import threading
import time
from typing import Any, AsyncIterator, Callable, Iterator

from ..errors import InputError
from .decoding import Completion, Penalties, PromptToken, StreamChunk
from .loading import get_local_model
from .registry import PROVIDER, is_local
from .runtime import Runtime

__all__ = ["DEFAULT_MAX_TOKENS", "PROVIDER", "acomplete", "acompletion", "astream_in_thread", "complete", "is_local",
           "penalties", "stream_deltas", "text_completion", "TEXT_DEFAULT_MAX_TOKENS"]

DEFAULT_MAX_TOKENS = 128
"""Token limit of a request that sets none."""
_AHEAD = 8


def _model_for(model: str) -> Runtime:
    return get_local_model(model.split("/", 1)[1] if is_local(model) else model)


def _number(params: dict, name: str) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, not {value!r}", param=name) from None


def penalties(params: dict | None, defaults: Penalties = Penalties()) -> Penalties:
    """OpenAI's ``frequency_penalty`` and ``presence_penalty`` as llama.cpp's penalties of the same
    names, on top of the model's ``defaults`` (its repeat penalty and window stay).  Out of OpenAI's
    range (-2 to 2): :class:`~middleware.errors.InputError`."""
    p = params or {}
    given = {field: value for name, field in (("frequency_penalty", "frequency"), ("presence_penalty", "presence"))
             if (value := _number(p, name)) is not None}
    return dataclasses.replace(defaults, **given)


def _sampling(params: dict | None, defaults: tuple[float, float] = (1.0, 1.0),
              penalty_defaults: Penalties = Penalties()) -> dict:
    """OpenAI parameters as :meth:`Runtime.generate` keyword arguments; unset temperature and top_p
    take the model's ``defaults``, unset penalties its ``penalty_defaults``."""
    p = dict(params or {})
    max_tokens = p.get("max_tokens", p.get("max_completion_tokens"))
    out = {
        "max_tokens": DEFAULT_MAX_TOKENS if max_tokens is None else int(max_tokens),
        "temperature": defaults[0] if p.get("temperature") is None else float(p["temperature"]),
        "top_p": defaults[1] if p.get("top_p") is None else float(p["top_p"]),
        "seed": p.get("seed"),
        "stop": p.get("stop"),
        "penalties": penalties(p, penalty_defaults),
    }
    if isinstance(out["stop"], str):
        out["stop"] = [out["stop"]]
    return out


# OpenAI's bound on top_logprobs.
MAX_TOP_LOGPROBS = 20


def _top_count(value: Any, param: str, where: str = "") -> None:
    """``value`` (how many alternatives per token) is None or an integer from 0 to MAX_TOP_LOGPROBS."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 0 <= value <= MAX_TOP_LOGPROBS):
        raise InputError(f"{param} must be an integer from 0 to {MAX_TOP_LOGPROBS}{where}", param=param)


def _logprobs(params: dict | None) -> int | None:
    """OpenAI's ``logprobs``/``top_logprobs`` as the runtime's ``logprobs`` argument (None: not asked)."""
    p = params or {}
    top, wanted = p.get("top_logprobs"), p.get("logprobs")
    _top_count(top, "top_logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise InputError("logprobs must be true or false", param="logprobs")
    if top is not None and not wanted:
        raise InputError("top_logprobs needs logprobs: true", param="top_logprobs")
    return (top or 0) if wanted else None


def _prepare(model: str, messages: list, params: dict | None) -> tuple[Runtime, str, dict]:
    lm = _model_for(model)
    prompt, role_stops = lm.format_chat(messages)
    kw = _sampling(params, lm.sampling_defaults(), lm.penalty_defaults())
    kw["stop"] = list(kw["stop"] or []) + role_stops
    top = _logprobs(params)
    if top is not None:
        if not lm.supports_logprobs:
            raise InputError(f"{model} on the {lm.runtime} runtime gives no logprobs: use the llama.cpp runtime "
                             "(the embedded models' default)", param="logprobs")
        kw["logprobs"] = top
    return lm, prompt, kw


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def complete(model: str, messages: list, params: dict | None,
             should_stop: Callable[[], bool] | None = None) -> list[Completion]:
    """``n`` answers (``params["n"]``) to ``messages``, text stripped."""
    n = int((params or {}).get("n") or 1)
    lm, prompt, kw = _prepare(model, messages, params)
    outs = lm.generate(prompt, n=n, should_stop=should_stop, **kw)
    return [dataclasses.replace(c, text=c.text.strip()) for c in outs]


async def acomplete(model: str, messages: list, params: dict | None) -> list[Completion]:
    """:func:`complete` in a worker thread; cancelling the awaiting task stops it at the next token."""
    cancelled = threading.Event()
    try:
        return await asyncio.to_thread(complete, model, messages, params, cancelled.is_set)
    finally:
        cancelled.set()


def stream_deltas(model: str, messages: list, params: dict | None) -> Iterator[dict]:
    """Text deltas ``{"text", "finish_reason", "completion_tokens", "usage"}``; joined, they equal
    :func:`complete`'s text.  ``completion_tokens`` counts the tokens so far; the last delta has a
    finish reason and the usage."""
    if int((params or {}).get("n") or 1) != 1:
        raise InputError("in-process models stream only n=1", param="n")
    lm, prompt, kw = _prepare(model, messages, params)
    top = kw.pop("logprobs", None)
    # Hold back whitespace until more text follows, so the streamed
    # content equals the non-streamed (stripped) content.
    started, pending, lps = False, "", []
    chunks = lm.stream_chunks(prompt, **kw) if top is None else _chunks_with_logprobs(lm, prompt, kw, top)
    try:
        for ch in chunks:
            text = pending + ch.text
            if not started:
                text = text.lstrip()
                started = bool(text)
            body = text.rstrip()
            pending = text[len(body):]
            done = ch.finish_reason is not None
            lps += ch.logprobs or []
            if not body and not done:
                continue
            yield {"text": body, "finish_reason": ch.finish_reason, "completion_tokens": ch.completion_tokens,
                   "usage": usage(ch.prompt_tokens, ch.completion_tokens) if done else None,
                   "logprobs": lps if top is not None else None}
            lps = []
    finally:
        chunks.close()


def _chunks_with_logprobs(lm: Runtime, prompt: str, kw: dict, top: int) -> Iterator[Any]:
    # Runtimes hand log-probabilities out through generate: the completion is decoded whole, then sent
    # as one chunk (answers that ask for logprobs are short).
    (c,) = lm.generate(prompt, n=1, logprobs=top, **kw)
    yield StreamChunk(c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens, c.logprobs)


TEXT_DEFAULT_MAX_TOKENS = 16
"""Token limit of a text completion that sets none (OpenAI's)."""


def text_completion(model: str, params: dict) -> dict:
    """OpenAI's legacy text completion (``/v1/completions``) from an in-process model, unaligned: the raw
    ``prompt`` continued, and with ``echo`` and ``logprobs`` each prompt token's log-probability (how
    lm-eval-harness and ``selfalign eval --api-scoring echo`` score a continuation over an API)."""
    lm = _model_for(model)
    prompt = params["prompt"]
    echo = bool(params.get("echo"))
    top = params.get("logprobs")
    _top_count(top, "logprobs", " on /v1/completions")
    kw = _sampling({**params, "max_tokens": params.get("max_tokens", TEXT_DEFAULT_MAX_TOKENS)},
                   lm.sampling_defaults(), lm.penalty_defaults())
    native = top is not None and lm.supports_logprobs
    text, reason, used, generated = "", "length", 0, []
    if kw["max_tokens"] > 0:
        (c,) = lm.generate(prompt, n=1, **kw, **({"logprobs": top} if native else {}))
        text, reason, used, generated = c.text, c.finish_reason, c.completion_tokens, c.logprobs or []
    tokens: list[PromptToken] = []
    if top is not None and not native:
        # A runtime without sampled-token logprobs scores prompt and answer in one pass over both.
        scored = lm.prompt_logprobs(prompt + text, top) if echo or text else []
        tokens = [t for t in scored if echo or t.offset >= len(prompt)]
    elif top is not None:
        tokens = lm.prompt_logprobs(prompt, top) if echo else []
        at = len(prompt)
        for entry in generated:
            tokens.append(PromptToken(entry["token"], at, entry["logprob"],
                                      {a["token"]: a["logprob"] for a in entry.get("top_logprobs") or []}))
            at += len(entry["token"])
    logprobs = None
    if top is not None:
        logprobs = {"tokens": [t.token for t in tokens], "token_logprobs": [t.logprob for t in tokens],
                    "top_logprobs": [(t.top or None) if top else None for t in tokens],
                    "text_offset": [t.offset for t in tokens]}
    n_prompt = lm.count_tokens(prompt)
    return {"id": "cmpl-" + secrets.token_hex(12), "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "text": (prompt if echo else "") + text, "logprobs": logprobs,
                                          "finish_reason": reason}],
            "usage": usage(n_prompt, used)}


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


async def astream_in_thread(items: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Run the generator ``items()`` in a worker thread and yield its items without blocking the loop.

    The worker runs at most a few items ahead of the consumer, so a consumer that stops reading
    (without closing) also stops decoding; closing or cancelling stops it at the next item.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()
    credits = threading.Semaphore(_AHEAD)
    done = object()

    def put(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # event loop already closed
            stop.set()

    def work() -> None:
        try:
            gen = items()
            try:
                while True:
                    while not credits.acquire(timeout=0.05):
                        if stop.is_set() or loop.is_closed():
                            return
                    if stop.is_set():
                        return
                    try:
                        item = next(gen)
                    except StopIteration:
                        return
                    put(item)
            finally:
                gen.close()
        except BaseException as exc:  # re-raised in the consumer
            put(_Failure(exc))
        finally:
            put(done)

    threading.Thread(target=work, name="local-llm-stream", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            credits.release()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()


async def acompletion(model: str, messages: list, stream: bool = False, **params: Any) -> Any:
    """``litellm.acompletion`` for ``local/`` models, as plain OpenAI JSON objects: a
    ``chat.completion`` dict, or (``stream=True``) an async iterator of ``chat.completion.chunk``
    dicts.  Parameters other than the sampling ones (``max_tokens``, ``temperature``, ``top_p``,
    ``seed``, ``stop``, ``n``, ``frequency_penalty``, ``presence_penalty``) and ``logprobs``/``top_logprobs``
    (OpenAI's shape, llama.cpp runtime) are ignored, as the litellm provider ignores them."""
    ident, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
    if stream:
        return _chunks(model, messages, params, ident, created)
    outs = await acomplete(model, messages, params)
    return {"id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                         "logprobs": None if c.logprobs is None else {"content": c.logprobs},
                         "finish_reason": c.finish_reason} for i, c in enumerate(outs)],
            "usage": usage(outs[0].prompt_tokens, sum(c.completion_tokens for c in outs))}


async def _chunks(model: str, messages: list, params: dict, ident: str, created: int) -> AsyncIterator[dict]:
    head = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
    first = True
    deltas = astream_in_thread(lambda: stream_deltas(model, messages, params))
    try:
        async for d in deltas:
            delta = {"role": "assistant", "content": d["text"]} if first else {"content": d["text"]}
            first = False
            choice = {"index": 0, "delta": delta, "finish_reason": d["finish_reason"]}
            if d["logprobs"] is not None:
                choice["logprobs"] = {"content": d["logprobs"]}
            chunk = {**head, "choices": [choice]}
            if d["usage"] is not None:
                chunk["usage"] = d["usage"]
            yield chunk
    finally:
        await deltas.aclose()
