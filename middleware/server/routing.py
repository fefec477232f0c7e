"""Per request: which aligner (country, language, k, strategy, profile) and which upstream model.

Precedence, field by field: the body's ``selfalign`` object, then the
``X-SelfAlign-*`` headers, then a ``MODEL@country`` suffix, then the server's
defaults. ``country: none`` turns injection off for the request.
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from ..retrieval.aligner import SelfAligner
from ..data.countries import resolve_country, resolve_language
from ..errors import ProfileError
from ..data.profile import ValueProfile
from ..retrieval.strategies import STRATEGIES
from .config import ServerConfig, Upstream
from .errors import ProxyError, bad_request

__all__ = ["AlignKey", "AlignerCache", "ProfileRegistry", "ModelRouter", "align_key", "split_model_suffix",
           "OPTION_FIELDS", "OFF"]

OPTION_FIELDS = ("country", "language", "k", "strategy", "profile")
HEADERS = {"country": "x-selfalign-country", "language": "x-selfalign-language", "profile": "x-selfalign-profile"}
OFF = frozenset({"none", "off"})
MAX_K = 100
# Only letters (and the spaces/dots/hyphens of country names) count as a country
# suffix, so provider versions such as Vertex's "claude-3-5-sonnet@20240620" pass untouched.
_SUFFIX = re.compile(r"[A-Za-z][A-Za-z .'-]*")


class AlignKey(NamedTuple):
    """A normalised aligner choice; equal keys share one cached SelfAligner."""

    country: str | None  # alpha-3
    language: str | None
    k: int
    strategy: str
    profile: str | None  # a registered profile name


def split_model_suffix(model: str) -> tuple[str, str | None]:
    """``"gpt-4o@ro"`` -> ``("gpt-4o", "ro")``; a model without a country suffix comes back unchanged."""
    base, sep, suffix = model.rpartition("@")
    if sep and base and _SUFFIX.fullmatch(suffix):
        return base, suffix
    return model, None


class ProfileRegistry:
    """Value profiles registered by name at start-up; requests may name them, never give paths."""

    def __init__(self, files: Mapping[str, Path] | None = None):
        self._profiles: dict[str, ValueProfile] = {}
        self._files: dict[str, Path] = {}
        for name, path in (files or {}).items():
            self.register(name, path)

    def register(self, name: str, source: ValueProfile | str | Path) -> ValueProfile:
        if isinstance(source, ValueProfile):
            profile = source
        else:
            from ..data.user_profile import load_user_profile

            profile = load_user_profile(source)
            self._files[name] = Path(source)
        self._profiles[name] = profile
        return profile

    def get(self, name: str) -> ValueProfile:
        try:
            return self._profiles[name]
        except KeyError:
            valid = ", ".join(sorted(self._profiles)) or "none are registered (see selfalign serve --config)"
            raise ProfileError(f"unknown profile {name!r}: registered profiles are {valid}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def describe(self) -> list[dict]:
        return [{"id": name, "object": "selfalign.profile", "language": p.language, "statements": len(p),
                 "description": p.description} for name, p in sorted(self._profiles.items())]


def _text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"selfalign.{field} must be a string", param=f"selfalign.{field}")
    return value.strip() or None


def align_key(options: Any, headers: Mapping[str, str], suffix_country: str | None, config: ServerConfig,
              profiles: ProfileRegistry) -> AlignKey | None:
    """Merge the request's choices over the defaults; None means "inject nothing"."""
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        raise bad_request("selfalign must be an object with country, language, k, strategy, profile",
                          param="selfalign")
    else:
        unknown = set(options) - set(OPTION_FIELDS)
        if unknown:
            raise bad_request(f"unknown selfalign field(s) {', '.join(sorted(map(str, unknown)))}; valid fields are "
                              f"{', '.join(OPTION_FIELDS)}", param="selfalign")

    def pick(field: str) -> str | None:
        value = _text(options.get(field), field)
        if value is None and field in HEADERS:
            value = (headers.get(HEADERS[field]) or "").strip() or None
        return value

    country = pick("country")
    if country is None:
        country = suffix_country
    if country is None:
        country = config.country
    language = pick("language") or config.language
    profile = pick("profile")
    strategy = _text(options.get("strategy"), "strategy") or config.strategy
    k = options.get("k", None)
    if k is None:
        k = config.k
    elif not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise bad_request(f"selfalign.k must be an integer from 1 to {MAX_K}", param="selfalign.k")

    if country is not None and country.lower() in OFF:
        return None
    if strategy not in STRATEGIES:
        raise bad_request(f"unknown strategy {strategy!r}: valid strategies are {', '.join(STRATEGIES)}",
                          param="selfalign.strategy")
    if profile is not None:
        profiles.get(profile)  # unknown names fail here, listing the registered ones
        return AlignKey(None, None, k, strategy, profile)
    if country is None:
        return None
    auto = language is None or language.lower() == "auto"  # None: detect each message's language
    return AlignKey(resolve_country(country).alpha3, None if auto else resolve_language(language), k, strategy, None)


class AlignerCache:
    """SelfAligners by key, least recently used dropped first (building one costs tens of ms)."""

    def __init__(self, profiles: ProfileRegistry, size: int = 256):
        self._profiles = profiles
        self._size = size
        self._items: collections.OrderedDict[AlignKey, SelfAligner] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _build(self, key: AlignKey) -> SelfAligner:
        profile = self._profiles.get(key.profile) if key.profile else None
        aligner = SelfAligner(country=key.country, language=key.language, k=key.k, strategy=key.strategy,
                              profile=profile)
        with self._lock:
            self._items[key] = aligner
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return aligner

    async def get(self, key: AlignKey) -> SelfAligner:
        aligner = self._items.get(key)
        if aligner is not None:
            self._items.move_to_end(key)
            return aligner
        # A cold country loads its answers and builds a chrF++ index: keep that off the event loop.
        return await asyncio.to_thread(self._build, key)


class ModelRouter:
    """Maps the ``model`` a client sends to an :class:`Upstream`.

    Without a ``models`` list the proxy fronts one upstream and serves every request
    with it, whatever name the client sends (a drop-in needs no model renames).
    With a list, only its names, their provider strings and the aliases are served.
    """

    def __init__(self, config: ServerConfig):
        self.default = config.default_upstream()
        self._strict = bool(config.models)
        self._by_name: dict[str, Upstream] = {}
        for up in config.models:
            self._by_name.setdefault(up.name, up)
            self._by_name.setdefault(up.model, up)
        for alias, target in config.aliases.items():
            self._by_name[alias] = next(m for m in config.models if m.name == target)
        self.names = [m.name for m in config.models] + list(config.aliases) if self._strict else [self.default.name]

    @property
    def upstreams(self) -> list[Upstream]:
        return list({id(u): u for u in self._by_name.values()}.values()) if self._strict else [self.default]

    def route(self, model: str | None) -> Upstream:
        if not self._strict:
            return self.default
        if model is None:
            return self._by_name.get(self.names[0]) or self.default
        up = self._by_name.get(model)
        if up is None:
            raise ProxyError(404, f"unknown model {model!r}: this proxy serves {', '.join(self.names)}",
                             param="model", code="model_not_found")
        return up
