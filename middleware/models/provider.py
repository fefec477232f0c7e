"""litellm provider ``local/...``: in-process models (see :mod:`middleware.models.registry`).

``litellm.completion(model="local/smollm2-135m-instruct", messages=...)`` runs
the embedded instruction-tuned SmolLM2 through llama.cpp; ``local/gemma-3-270m``
the embedded base Gemma; ``local/PATH`` a ``.gguf`` file or a Hugging Face model
directory; ``?runtime=transformers`` picks the torch runtime.  This is the one
place that imports litellm: always obtain it through :func:`import_litellm` so
the provider is registered and litellm never fetches its cost map at import.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any, AsyncIterator, Iterator

from .loading import get_local_model
from .registry import BASE_MODEL, CHAT_MODEL
from .runtime import Runtime

__all__ = ["DEFAULT_MODEL", "EVAL_MODEL", "PROVIDER", "LocalLLM", "import_litellm", "is_local",
           "register_provider"]

PROVIDER = "local"
DEFAULT_MODEL = f"{PROVIDER}/{CHAT_MODEL}"
"""Chat and serve default: instruction-tuned, English."""
EVAL_MODEL = f"{PROVIDER}/{BASE_MODEL}"
"""Evaluator default: the base model scores survey options better (docs/models.md)."""
_AHEAD = 8

_register_lock = threading.Lock()
_handler: "LocalLLM | None" = None


def import_litellm():
    """Return the ``litellm`` module with the ``local`` provider registered.

    ``LITELLM_LOCAL_MODEL_COST_MAP`` is set before the first import so that
    importing litellm makes no network request.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    register_provider(litellm)
    return litellm


def register_provider(litellm: Any) -> "LocalLLM":
    """Add the ``local`` handler to ``litellm.custom_provider_map`` (idempotent)."""
    global _handler
    with _register_lock:
        if _handler is None:
            _handler = _make_handler_class(litellm)()
        entries = [e for e in litellm.custom_provider_map if e.get("provider") != PROVIDER]
        litellm.custom_provider_map = entries + [{"provider": PROVIDER, "custom_handler": _handler}]
        # litellm also does this lazily per call; doing it now lets
        # get_llm_provider() recognise "local/..." before the first request.
        from litellm.utils import custom_llm_setup

        custom_llm_setup()
        return _handler


def is_local(model: str) -> bool:
    """Whether litellm would route ``model`` to this in-process provider."""
    return model.startswith(PROVIDER + "/")


def _model_for(model: str) -> Runtime:
    return get_local_model(model.split("/", 1)[1] if is_local(model) else model)


def _sampling(optional_params: dict | None, defaults: tuple[float, float] = (1.0, 1.0)) -> dict:
    """Map OpenAI parameters to :meth:`Runtime.generate` keyword arguments; unset temperature and
    top_p take the model's ``defaults``."""
    p = dict(optional_params or {})
    max_tokens = p.get("max_tokens", p.get("max_completion_tokens"))
    out = {
        "max_tokens": 128 if max_tokens is None else int(max_tokens),
        "temperature": defaults[0] if p.get("temperature") is None else float(p["temperature"]),
        "top_p": defaults[1] if p.get("top_p") is None else float(p["top_p"]),
        "seed": p.get("seed"),
        "stop": p.get("stop"),
    }
    if isinstance(out["stop"], str):
        out["stop"] = [out["stop"]]
    return out


def _prepare(model: str, messages: list, optional_params: dict | None) -> tuple[Runtime, str, dict]:
    lm = _model_for(model)
    prompt, role_stops = lm.format_chat(messages)
    kw = _sampling(optional_params, lm.sampling_defaults())
    kw["stop"] = list(kw["stop"] or []) + role_stops
    return lm, prompt, kw


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _make_handler_class(litellm: Any) -> type:
    """Build the handler class lazily: ``CustomLLM`` only exists once litellm is imported."""
    from litellm import CustomLLM
    from litellm.llms.custom_llm import CustomLLMError
    from litellm.types.utils import Choices, Message, Usage

    class LocalLLM(CustomLLM):
        """litellm handler running a :class:`~middleware.models.runtime.Runtime` in-process.

        The async variants run the model in worker threads so the event loop
        never blocks; an abandoned async stream stops decoding.
        """

        # ------------------------------------------------------------ sync

        def _complete(self, model: str, messages: list, model_response: Any,
                      optional_params: dict | None, should_stop=None) -> Any:
            kw = dict(optional_params or {})
            n = int(kw.get("n") or 1)
            lm, prompt, kw = _prepare(model, messages, kw)
            outs = lm.generate(prompt, n=n, should_stop=should_stop, **kw)
            if model_response is None:
                model_response = litellm.ModelResponse()
            model_response.choices = [
                Choices(index=i, finish_reason=c.finish_reason,
                        message=Message(role="assistant", content=c.text.strip()))
                for i, c in enumerate(outs)]
            model_response.created = int(time.time())
            model_response.model = f"{PROVIDER}/{model}"
            usage = _usage(outs[0].prompt_tokens, sum(c.completion_tokens for c in outs))
            model_response.usage = Usage(**usage)  # type: ignore[attr-defined]
            return model_response

        def completion(self, model: str, messages: list, model_response: Any = None,
                       optional_params: dict | None = None, **kwargs: Any) -> Any:
            return self._complete(model, messages, model_response, optional_params)

        def _chunks(self, model: str, messages: list, optional_params: dict | None) -> Iterator[dict]:
            kw = dict(optional_params or {})
            if int(kw.get("n") or 1) != 1:
                raise CustomLLMError(status_code=400, message="local provider streams only n=1")
            lm, prompt, kw = _prepare(model, messages, kw)
            # Hold back whitespace until more text follows, so the streamed
            # content equals the non-streamed (stripped) content.
            started, pending = False, ""
            chunks = lm.stream_chunks(prompt, **kw)
            try:
                for ch in chunks:
                    text = pending + ch.text
                    if not started:
                        text = text.lstrip()
                        started = bool(text)
                    body = text.rstrip()
                    pending = text[len(body):]
                    done = ch.finish_reason is not None
                    if not body and not done:
                        continue
                    yield {"text": body, "tool_use": None, "is_finished": done,
                           "finish_reason": ch.finish_reason or "", "index": 0,
                           "usage": _usage(ch.prompt_tokens, ch.completion_tokens) if done else None}
            finally:
                chunks.close()

        def streaming(self, model: str, messages: list, optional_params: dict | None = None,
                      **kwargs: Any) -> Iterator[dict]:
            return self._chunks(model, messages, optional_params)

        # ------------------------------------------------------------ async

        async def acompletion(self, model: str, messages: list, model_response: Any = None,
                              optional_params: dict | None = None, **kwargs: Any) -> Any:
            cancelled = threading.Event()
            try:
                return await asyncio.to_thread(self._complete, model, messages, model_response,
                                               optional_params, cancelled.is_set)
            finally:
                # If the awaiting task was cancelled, stop the worker at the next token.
                cancelled.set()

        async def astreaming(self, model: str, messages: list, optional_params: dict | None = None,
                             **kwargs: Any) -> AsyncIterator[dict]:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue = asyncio.Queue()
            stop = threading.Event()
            # The worker may run at most _AHEAD chunks ahead of the consumer, so
            # a consumer that stops reading (without closing) also stops decoding.
            credits = threading.Semaphore(_AHEAD)
            done = object()

            def put(item: Any) -> None:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # event loop already closed
                    stop.set()

            def work() -> None:
                try:
                    gen = self._chunks(model, messages, optional_params)
                    try:
                        while True:
                            while not credits.acquire(timeout=0.05):
                                if stop.is_set() or loop.is_closed():
                                    return
                            if stop.is_set():
                                return
                            try:
                                chunk = next(gen)
                            except StopIteration:
                                return
                            put(chunk)
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

    LocalLLM.__module__ = __name__
    globals()["LocalLLM"] = LocalLLM
    return LocalLLM


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def __getattr__(name: str) -> Any:
    # ``LocalLLM`` subclasses litellm's CustomLLM, so it exists only after
    # import_litellm(); this keeps ``from middleware.models.provider import LocalLLM`` working.
    if name == "LocalLLM":
        import_litellm()
        return globals()["LocalLLM"]
    raise AttributeError(name)

