"""Model backends of the chat: functions ``complete(messages, stream=True)`` that yield the answer as text deltas.

:func:`litellm_backend` calls any litellm model, and the embedded ``local/`` models in-process
(without importing litellm); :func:`preload_model` loads an embedded model before the first message.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from ..errors import ChatBackendError
from .session import Complete

__all__ = ["litellm_backend", "preload_model"]


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[0].split())
    # litellm repeats the class name ("litellm.BadRequestError: BadRequestError: ...").
    text = re.sub(r"^(litellm\.)?\w+Error: (\w+Error: )?", "", text)
    return text[:300] or type(exc).__name__


def _missing_keys(litellm: Any, model: str, api_base: str | None) -> list[str]:
    try:
        info = litellm.validate_environment(model=model, api_base=api_base)
    except Exception:  # an unknown provider is reported by the first call instead
        return []
    # Only credentials: settings such as OLLAMA_API_BASE have working defaults.
    return [k for k in info.get("missing_keys") or [] if re.search(r"KEY|TOKEN|SECRET", k)]


def _backend_error(litellm: Any, model: str, exc: Exception) -> ChatBackendError:
    if isinstance(exc, getattr(litellm, "AuthenticationError", ())):
        return ChatBackendError(f"model {model}: authentication failed: {_first_line(exc)}")
    return ChatBackendError(f"model {model}: {_first_line(exc)}")


def preload_model(model: str) -> None:
    """Load an embedded/local model now (with its spinner) rather than inside the first answer."""
    from ..models.inprocess import is_local

    if not is_local(model):
        return
    from ..models.loading import get_local_model

    try:
        get_local_model(model)
    except (FileNotFoundError, OSError, ValueError) as e:
        raise ChatBackendError(f"model {model}: {_first_line(e)}") from None


def litellm_backend(model: str | None = None, max_tokens: int | None = None, temperature: float | None = None,
                    api_base: str | None = None, seed: int | None = None) -> Complete:
    """A ``complete`` function calling ``model`` through litellm (default: the embedded SmolLM2;
    ``local/`` models are called in-process, without litellm).

    Raises :class:`ChatBackendError` naming the environment variable when the
    provider's API key is not set, so a chat never starts only to fail on its first message.
    """
    from ..models.provider import DEFAULT_MODEL, import_litellm, is_local

    model = model or DEFAULT_MODEL
    if is_local(model):
        # The embedded models need no litellm (which takes seconds to import): call them in-process.
        return _in_process_backend(model, {"max_tokens": max_tokens, "temperature": temperature, "seed": seed})
    litellm = import_litellm()
    # litellm prints banners ("Give Feedback / Get Help") around every error.
    litellm.suppress_debug_info = True
    missing = _missing_keys(litellm, model, api_base)
    if missing:
        names = " and ".join(missing)
        raise ChatBackendError(f"model {model} needs {names}: set it in the environment "
                               f"(export {missing[0]}=...)")
    params = {k: v for k, v in {"max_tokens": max_tokens, "temperature": temperature, "api_base": api_base,
                                "seed": seed}.items() if v is not None}

    def complete(messages: list[dict], stream: bool = True) -> Iterator[str]:
        try:
            response = litellm.completion(model=model, messages=messages, stream=stream, **params)
        except Exception as e:
            raise _backend_error(litellm, model, e) from None
        if not stream:
            yield response.choices[0].message.content or ""
            return
        try:
            for chunk in response:
                choices = getattr(chunk, "choices", None) or []
                delta = getattr(choices[0].delta, "content", None) if choices else None
                if delta:
                    yield delta
        except Exception as e:
            raise _backend_error(litellm, model, e) from None
        finally:
            # Stops local decoding at once when the reader stops early (Ctrl-C).
            inner = getattr(response, "completion_stream", None)
            close = getattr(inner, "close", None)
            if callable(close):
                close()

    return complete


def _in_process_backend(model: str, params: dict) -> Complete:
    from ..models.inprocess import DEFAULT_MAX_TOKENS, complete as generate, stream_deltas
    from .render import whole_sentences

    params = {k: v for k, v in params.items() if v is not None}
    limit = params.get("max_tokens", DEFAULT_MAX_TOKENS)

    def complete(messages: list[dict], stream: bool = True) -> Iterator[str]:
        try:
            if not stream:
                a = generate(model, messages, params)[0]
                yield "".join(whole_sentences([(a.text, a.finish_reason, a.completion_tokens)], limit))
                return
            deltas = stream_deltas(model, messages, params)
            try:
                yield from whole_sentences(((d["text"], d["finish_reason"], d["completion_tokens"]) for d in deltas),
                                           limit)
            finally:
                deltas.close()  # stops decoding at once when the reader stops early (Ctrl-C)
        except Exception as e:
            raise ChatBackendError(f"model {model}: {_first_line(e)}") from None

    return complete
