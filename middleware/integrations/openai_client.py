"""Self-alignment for an existing OpenAI SDK client, without a proxy.

    client = wrap_openai(openai.OpenAI(), country="ro", language="en")
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])   # demonstrations injected

Works the same for ``openai.AsyncOpenAI`` (and Azure clients). Only the chat
completion calls that take ``messages`` (``create``, ``parse``, ``stream``,
also under ``with_raw_response`` / ``with_streaming_response``) are changed;
every other attribute is the original client's. One call can choose other
settings with ``selfalign={"country": "tr"}`` (or ``extra_body={"selfalign": ...}``,
the form the proxy takes), and ``{"country": "none"}`` turns injection off.

Each aligned call's result (the completion, the stream, the raw response) carries what the proxy
sends as headers: ``result.selfalign == {"demonstrations": 0, "relevance": {"inject": False, "score": 0.03,
"threshold": 0.5, "reason": "not about values"}}``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..errors import InputError
from ..options import OPTION_NAMES, PYTHON_ONLY, AlignOptions, is_off, merge
from ..retrieval.aligner import SelfAligner
from ..retrieval.demonstration import Selection
from ..retrieval.cache import python_cache
from ..retrieval.relevance import ALIGNMENT_OFF

__all__ = ["wrap_openai", "AlignedClient"]

_ALIGNED_METHODS = frozenset({"create", "parse", "stream"})
_NESTED = frozenset({"with_raw_response", "with_streaming_response"})
_ACCEPTED = OPTION_NAMES + PYTHON_ONLY


class _Aligners:
    """The wrapper's options and aligner; per-call options take other aligners from the shared cache."""

    def __init__(self, options: dict):
        options = dict(options)
        self.seed = options.pop("seed", None)
        self.options = AlignOptions(**options)
        self._cache = python_cache()
        key = self._cache.key(self.options)
        if key is None and not is_off(self.options.country):
            raise InputError("give a country (e.g. country='ro'), a profile, or country='none'",
                                 param="country")
        self.default = None if key is None else self._cache.get(key, self.seed)

    def key(self, override: Any) -> tuple[AlignOptions, Any] | None:
        if not isinstance(override, Mapping) or set(override) - set(_ACCEPTED):
            raise InputError(f"selfalign must be a dict with keys among {', '.join(_ACCEPTED)}",
                                 param="selfalign")
        layer = {k: v for k, v in override.items() if k not in PYTHON_ONLY}
        key = self._cache.key(merge(layer, defaults=self.options.options()))
        return None if key is None else (key, override.get("seed", self.seed))

    def pick(self, override: Any) -> SelfAligner | None:
        if override is None:
            return self.default
        chosen = self.key(override)
        return None if chosen is None else self._cache.get(*chosen)

    async def apick(self, override: Any) -> SelfAligner | None:
        """As :meth:`pick`; a missing aligner is built in a worker thread, off the event loop."""
        if override is None:
            return self.default
        chosen = self.key(override)
        return None if chosen is None else await self._cache.aget(*chosen)


def _options_from(kwargs: dict) -> Any:
    """Take the per-call options out of the call's arguments (``selfalign=`` or ``extra_body["selfalign"]``)."""
    override = kwargs.pop("selfalign", None)
    extra = kwargs.get("extra_body")
    if isinstance(extra, dict) and "selfalign" in extra:
        extra = dict(extra)
        from_body = extra.pop("selfalign")
        override = override if override is not None else from_body
        kwargs["extra_body"] = extra or None
    return override


def _align(aligner: SelfAligner | None, kwargs: dict) -> Selection | None:
    messages = kwargs.get("messages")
    if messages is None:
        return None
    if aligner is None:
        return Selection([], ALIGNMENT_OFF)
    kwargs["messages"], demos = aligner.align_with_demonstrations(list(messages))
    return demos


def _report(result: Any, demos: Selection | None) -> Any:
    """Leave the decision on the call's result, as the proxy leaves it in headers."""
    if demos is not None:
        try:
            result.selfalign = {"demonstrations": len(demos), "relevance": demos.relevance.to_dict()}
        except (AttributeError, TypeError, ValueError):  # a result type that takes no attributes
            pass
    return result


def _aligning(method: Callable, aligners: _Aligners, awaitable: bool) -> Callable:
    if awaitable:
        # An async client's create/parse: return a coroutine, so that building an aligner for
        # new per-call options happens in a worker thread, not on the caller's event loop.
        async def call(*args: Any, **kwargs: Any) -> Any:
            demos = _align(await aligners.apick(_options_from(kwargs)), kwargs)
            return _report(await method(*args, **kwargs), demos)
    else:
        def call(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            demos = _align(aligners.pick(_options_from(kwargs)), kwargs)
            return _report(method(*args, **kwargs), demos)

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
            # Async create/parse return awaitables; stream() and with_streaming_response return managers.
            kind = type(self._inner).__name__
            awaitable = kind.startswith("Async") and "Streaming" not in kind and name != "stream"
            return _aligning(attr, self._aligners, awaitable)
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


def wrap_openai(client: Any, **options: Any) -> AlignedClient:
    """Return ``client`` with self-aligned chat completions.

    ``options`` are :class:`~middleware.options.AlignOptions`' (country, language, profile, k, strategy;
    here a profile may also be a file path or a ValueProfile) and ``seed`` for the random strategies.
    Bad settings (unknown country, ...) raise :class:`~middleware.errors.SelfAlignError` here, not on first use.
    """
    if not hasattr(client, "chat"):
        raise TypeError(f"wrap_openai expects an openai.OpenAI or openai.AsyncOpenAI client, got {type(client)!r}")
    unknown = set(options) - set(_ACCEPTED)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; use {', '.join(_ACCEPTED)}")
    if isinstance(client, AlignedClient):
        client = client.wrapped
    return AlignedClient(client, _Aligners(options))
