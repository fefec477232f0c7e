"""litellm provider ``local/...``: in-process models (see :mod:`middleware.models.registry`).

``litellm.completion(model="local/smollm2-135m-instruct", messages=...)`` runs
the embedded instruction-tuned SmolLM2 through llama.cpp; ``local/gemma-3-270m``
the embedded base Gemma; ``local/PATH`` a ``.gguf`` file or a Hugging Face model
directory; ``?runtime=transformers`` picks the torch runtime.  This is the one
place that imports litellm: always obtain it through :func:`import_litellm` so
the provider is registered and litellm never fetches its cost map at import.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, AsyncIterator, Iterator

from ..errors import InputError
from .inprocess import PROVIDER, acomplete, astream_in_thread, complete, is_local, stream_deltas, usage
from .registry import CHAT_MODEL, EVAL_MODEL

__all__ = ["DEFAULT_MODEL", "EVAL_MODEL", "PROVIDER", "LocalLLM", "import_litellm", "is_local",
           "register_provider"]

DEFAULT_MODEL = f"{PROVIDER}/{CHAT_MODEL}"
"""Chat and serve default: instruction-tuned, English."""

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


def _make_handler_class(litellm: Any) -> type:
    """Build the handler class lazily: ``CustomLLM`` only exists once litellm is imported."""
    from litellm import CustomLLM
    from litellm.llms.custom_llm import CustomLLMError
    from litellm.types.utils import Choices, Message, Usage

    class LocalLLM(CustomLLM):
        """litellm handler running a :class:`~middleware.models.runtime.Runtime` in-process
        (through :mod:`middleware.models.inprocess`).

        The async variants run the model in worker threads so the event loop
        never blocks; an abandoned async stream stops decoding.
        """

        @staticmethod
        def _response(model: str, outs: list, model_response: Any) -> Any:
            if model_response is None:
                model_response = litellm.ModelResponse()
            model_response.choices = [
                Choices(index=i, finish_reason=c.finish_reason, message=Message(role="assistant", content=c.text))
                for i, c in enumerate(outs)]
            model_response.created = int(time.time())
            model_response.model = f"{PROVIDER}/{model}"
            model_response.usage = Usage(  # type: ignore[attr-defined]
                **usage(outs[0].prompt_tokens, sum(c.completion_tokens for c in outs)))
            return model_response

        def completion(self, model: str, messages: list, model_response: Any = None,
                       optional_params: dict | None = None, **kwargs: Any) -> Any:
            try:
                return self._response(model, complete(model, messages, optional_params), model_response)
            except InputError as e:
                raise CustomLLMError(status_code=400, message=str(e)) from None

        @staticmethod
        def _chunks(model: str, messages: list, optional_params: dict | None) -> Iterator[dict]:
            try:
                deltas = stream_deltas(model, messages, optional_params)
                for d in deltas:
                    yield {"text": d["text"], "tool_use": None, "is_finished": d["finish_reason"] is not None,
                           "finish_reason": d["finish_reason"] or "", "index": 0, "usage": d["usage"]}
            except InputError as e:
                raise CustomLLMError(status_code=400, message=str(e)) from None

        def streaming(self, model: str, messages: list, optional_params: dict | None = None,
                      **kwargs: Any) -> Iterator[dict]:
            return self._chunks(model, messages, optional_params)

        async def acompletion(self, model: str, messages: list, model_response: Any = None,
                              optional_params: dict | None = None, **kwargs: Any) -> Any:
            try:
                return self._response(model, await acomplete(model, messages, optional_params), model_response)
            except InputError as e:  # litellm would call anything else a connection error (502)
                raise CustomLLMError(status_code=400, message=str(e)) from None

        def astreaming(self, model: str, messages: list, optional_params: dict | None = None,
                       **kwargs: Any) -> AsyncIterator[dict]:
            return astream_in_thread(lambda: self._chunks(model, messages, optional_params))

    LocalLLM.__module__ = __name__
    globals()["LocalLLM"] = LocalLLM
    return LocalLLM


def __getattr__(name: str) -> Any:
    # ``LocalLLM`` subclasses litellm's CustomLLM, so it exists only after
    # import_litellm(); this keeps ``from middleware.models.provider import LocalLLM`` working.
    if name == "LocalLLM":
        import_litellm()
        return globals()["LocalLLM"]
    raise AttributeError(name)

