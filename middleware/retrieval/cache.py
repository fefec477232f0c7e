"""The one aligner cache: the only way an entry point gets an aligner (the proxy, the OpenAI wrapper,
the LiteLLM callback, :func:`align`, the chat, ``selfalign demos`` and the evaluator).

Requests choose options per call, so aligners are built on demand. Three things keep that cheap:

- what does not depend on k or strategy is shared: a built-in profile per (country, language)
  (:func:`~middleware.data.profile.builtin_profile`) and one chrF++ index per set of retrieval
  keys (every country of a language has the same keys), so a new k or strategy costs
  microseconds, a new country of a known language a few milliseconds;
- the cache is bounded (least recently used dropped first), since options can come from
  untrusted requests;
- :meth:`AlignerCache.aget` builds a missing aligner in a worker thread, off the event loop,
  and concurrent requests for the same options wait for one build.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import threading
from pathlib import Path
from typing import Any, Callable, Generic, Hashable, Sequence, TypeVar

from ..data.countries import Country, resolve_country, resolve_language
from ..data.profile import ValueProfile
from ..data.registry import ProfileRegistry
from ..errors import InputError
from ..options import AlignOptions, is_off
from .aligner import AUTO, SelfAligner

__all__ = ["AlignerCache", "LRU", "python_cache", "aligner_for", "align"]

V = TypeVar("V")


class LRU(Generic[V]):
    """A thread-safe least-recently-used map whose values are built at most once per key at a time."""

    def __init__(self, size: int):
        self.size = size
        self._items: collections.OrderedDict[Hashable, V] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}
        self.builds = 0

    def peek(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        value = self.peek(key)
        if value is not None:
            return value
        with self._lock:
            once = self._building.setdefault(key, threading.Lock())
        with once:
            value = self.peek(key)  # another thread may have built it while this one waited
            if value is not None:
                return value
            try:
                value = build()
                with self._lock:
                    self.builds += 1
                    self._items[key] = value
                    while len(self._items) > self.size:
                        self._items.popitem(last=False)
            finally:
                with self._lock:
                    self._building.pop(key, None)
        return value

    def __len__(self) -> int:
        return len(self._items)


class _Same:
    """A key part compared by identity (a ValueProfile object given by a Python caller is not hashable)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


class AlignerCache:
    """SelfAligners by normalised :class:`~middleware.options.AlignOptions`, bounded.

    ``profiles`` holds the profiles requests may name. ``paths=True`` (Python callers only,
    never requests) also takes a profile file path or a ValueProfile object.
    """

    def __init__(self, profiles: ProfileRegistry | None = None, *, paths: bool = False, size: int = 256):
        self.profiles = profiles if profiles is not None else ProfileRegistry()
        self._paths = paths
        self._aligners: LRU[SelfAligner] = LRU(size)
        self._files: LRU[ValueProfile] = LRU(32)

    def key(self, options: AlignOptions) -> AlignOptions | None:
        """The options normalised (country alpha-3, language code, profile checked); None: align nothing.

        Unknown countries, languages and profiles raise the SelfAlignError naming them.
        """
        if options.off:
            return None
        profile = options.profile
        if profile is not None:
            if isinstance(profile, str) and (profile in self.profiles or not self._paths):
                self.profiles.get(profile)  # unknown names fail here, listing the registered ones
                return options.replace(country=None, language=None)
            if isinstance(profile, ValueProfile):
                # A profile object may come with its country (the evaluator's pairs): kept, so that a
                # strategy's instruction can name it ("born in Romania").
                country = options.country
                if country is not None and not options.off:
                    country = country.alpha3 if isinstance(country, Country) else resolve_country(country).alpha3
                return options.replace(country=country, profile=_Same(profile))
            if isinstance(profile, Path):
                profile = str(profile)
            return options.replace(country=None, profile=profile)
        country = options.country
        country = country.alpha3 if isinstance(country, Country) else resolve_country(country).alpha3
        # None is "auto" too: SelfAligner then detects each message's language.
        auto = options.language is None or options.language.strip().lower() == AUTO
        language = None if auto else resolve_language(options.language)
        return options.replace(country=country, language=language)

    def _profile(self, key: AlignOptions) -> ValueProfile | None:
        profile = key.profile
        if profile is None:
            return None  # built-in: SelfAligner takes the shared builtin_profile
        if isinstance(profile, _Same):
            return profile.obj
        if profile in self.profiles:
            return self.profiles.get(profile)
        from ..data.user_profile import load_user_profile

        return self._files.get((profile, key.language), lambda: load_user_profile(profile, language=key.language))

    def _build(self, key: AlignOptions, seed: int | None) -> SelfAligner:
        return SelfAligner(**{**key.options(), "profile": self._profile(key)}, seed=seed)

    def get(self, key: AlignOptions, seed: int | None = None) -> SelfAligner:
        """The aligner for a normalised key (see :meth:`key`), built on this thread when missing.

        A seeded aligner is built afresh on every call (cheap: profiles and indexes are shared), so
        the same seed draws the same demonstrations however often it is asked for.
        """
        if seed is not None:
            return self._build(key, seed)
        return self._aligners.get((key, seed), lambda: self._build(key, seed))

    async def aget(self, key: AlignOptions, seed: int | None = None) -> SelfAligner:
        """As :meth:`get`, but a missing aligner is built in a worker thread, off the event loop."""
        aligner = self._aligners.peek((key, seed)) if seed is None else None
        if aligner is not None:
            return aligner
        return await asyncio.to_thread(self.get, key, seed)

    @property
    def builds(self) -> int:
        """How many aligners were built (for tests and benchmarks)."""
        return self._aligners.builds

    def __len__(self) -> int:
        """How many aligners are held."""
        return len(self._aligners)


_PYTHON = AlignerCache(paths=True)


def python_cache() -> AlignerCache:
    """The cache shared by Python callers (:func:`~middleware.retrieval.aligner.align`, ``wrap_openai``)."""
    return _PYTHON


def aligner_for(options: AlignOptions | None = None, *, seed: int | None = None, **values: Any) -> SelfAligner | None:
    """The aligner for ``options`` (or the option ``values``) from :func:`python_cache`; None when they
    turn alignment off (``country="none"``). What the chat, ``selfalign demos`` and the evaluator use.

    Neither a country nor a profile is an error naming the country.
    """
    chosen = options if options is not None else AlignOptions(**values)
    cache = python_cache()
    key = cache.key(chosen)
    if key is None:
        if is_off(chosen.country):
            return None
        raise InputError("give a country (e.g. country='ro') or a profile", param="country")
    return cache.get(key, seed)


def align(messages: Sequence[dict], **options: Any) -> list[dict]:
    """Pure function form of :meth:`SelfAligner.align`: ``options`` are
    :class:`~middleware.options.AlignOptions`' (country, language, k, strategy, profile; a profile may be
    a file path here) and ``seed``. Aligners come from the cache the Python integrations share.

    Random strategies draw from a generator seeded with ``seed``: the same seed, the same draws.
    """
    seed = options.pop("seed", None)
    aligner = aligner_for(seed=seed, **options)
    if aligner is None:  # country="none": the messages as they are (a copy, like align's)
        return copy.deepcopy(list(messages))
    return aligner.align(messages)
