"""Self-alignment for an existing OpenAI SDK client, without a proxy.

    client = wrap_openai(openai.OpenAI(), country="ro", language="en")
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])   # demonstrations injected

Works the same for ``openai.AsyncOpenAI`` (and Azure clients). Only the chat
completion calls that take ``messages`` (``create``, ``parse``, ``stream``,
also under ``with_raw_response`` / ``with_streaming_response``) are changed;
every other attribute is the original client's. One call can choose other
settings with ``selfalign={"country": "tr"}`` (or ``extra_body={"selfalign": ...}``,
the form the proxy takes), and ``{"country": "none"}`` turns injection off.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..retrieval.aligner import SelfAligner
from ..errors import SelfAlignError

__all__ = ["wrap_openai", "AlignedClient"]

_ALIGNED_METHODS = frozenset({"create", "parse", "stream"})
_NESTED = frozenset({"with_raw_response", "with_streaming_response"})
_OPTIONS = ("country", "language", "k", "strategy", "profile", "seed")
_OFF = frozenset({"none", "off"})


class _Aligners:
    """The wrapper's own aligner plus the few others that per-call options ask for."""

    def __init__(self, options: dict):
        self.options = options
        off = str(options.get("country") or "").lower() in _OFF
        self.default = None if off else SelfAligner(**options)
        self._others: dict[tuple, SelfAligner] = {}
        self._lock = threading.Lock()

    def pick(self, override: Any) -> SelfAligner | None:
        if override is None:
            return self.default
        if not isinstance(override, dict) or set(override) - set(_OPTIONS):
            raise SelfAlignError(f"selfalign must be a dict with keys among {', '.join(_OPTIONS)}", param="selfalign")
        merged = {**self.options, **{k: v for k, v in override.items() if v is not None}}
        if "profile" in override and "country" not in override:
            merged.pop("country", None)
        if str(merged.get("country") or "").lower() in _OFF or (merged.get("country") is None
                                                               and merged.get("profile") is None):
            return None
        key = tuple(sorted((k, str(v)) for k, v in merged.items()))
        with self._lock:
            aligner = self._others.get(key)
            if aligner is None:
                if len(self._others) >= 64:  # bounded: options may come from untrusted input
                    self._others.clear()
                aligner = self._others[key] = SelfAligner(**merged)
        return aligner


def _aligning(method: Callable, aligners: _Aligners) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        override = kwargs.pop("selfalign", None)
        extra = kwargs.get("extra_body")
        if isinstance(extra, dict) and "selfalign" in extra:
            extra = dict(extra)
            from_body = extra.pop("selfalign")
            override = override if override is not None else from_body
            kwargs["extra_body"] = extra or None
        aligner = aligners.pick(override)
        messages = kwargs.get("messages")
        if aligner is not None and messages is not None:
            kwargs["messages"] = aligner.align(list(messages))
        # The original method returns a coroutine for async clients: alignment is done by now either way.
        return method(*args, **kwargs)

    call.__name__ = getattr(method, "__name__", "create")
    call.__doc__ = getattr(method, "__doc__", None)
    call.__wrapped__ = method  # type: ignore[attr-defined]
    return call


class _Delegate:
    def __init__(self, inner: Any, aligners: _Aligners):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_aligners", aligners)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)

    def __repr__(self) -> str:
        return f"<aligned {self._inner!r}>"


class _Completions(_Delegate):
    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in _ALIGNED_METHODS and callable(attr):
            return _aligning(attr, self._aligners)
        if name in _NESTED:
            return _Completions(attr, self._aligners)
        return attr


class _Chat(_Delegate):
    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name == "completions":
            return _Completions(attr, self._aligners)
        if name in _NESTED:  # client.chat.with_raw_response.completions.create(...)
            return _Chat(attr, self._aligners)
        return attr


class AlignedClient(_Delegate):
    """An OpenAI client whose chat completions are self-aligned; everything else is the wrapped client's."""

    @property
    def aligner(self) -> SelfAligner | None:
        """The default aligner (None when the wrapper was made with country="none")."""
        return self._aligners.default

    @property
    def wrapped(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name == "chat":
            return _Chat(attr, self._aligners)
        if name in ("with_options", "copy"):
            # A derived client (other timeout, headers...) stays aligned the same way.
            def derive(*args: Any, **kwargs: Any) -> AlignedClient:
                return AlignedClient(attr(*args, **kwargs), self._aligners)

            return derive
        return attr

    def __enter__(self) -> "AlignedClient":
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._inner.__exit__(*exc)

    async def __aenter__(self) -> "AlignedClient":
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._inner.__aexit__(*exc)


def wrap_openai(client: Any, country: str | None = None, **aligner_options: Any) -> AlignedClient:
    """Return ``client`` with self-aligned chat completions.

    ``aligner_options`` are :class:`~middleware.retrieval.aligner.SelfAligner`'s: language, k, strategy, profile, seed.
    Bad settings (unknown country, ...) raise :class:`~middleware.errors.SelfAlignError` here, not on first use.
    """
    if not hasattr(client, "chat"):
        raise TypeError(f"wrap_openai expects an openai.OpenAI or openai.AsyncOpenAI client, got {type(client)!r}")
    unknown = set(aligner_options) - set(_OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; use {', '.join(_OPTIONS[1:])}")
    if isinstance(client, AlignedClient):
        client = client.wrapped
    return AlignedClient(client, _Aligners({"country": country, **aligner_options}))
