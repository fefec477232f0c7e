"""Per request: which aligner (the options of :mod:`middleware.options`) and which upstream model.

Precedence, field by field: the body's ``selfalign`` object, then the
``X-SelfAlign-*`` headers, then a ``MODEL@country`` suffix, then the server's
defaults. ``country: none`` turns injection off for the request.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping

from ..data.coverage import coverage_warning_once
from ..options import AlignOptions, merge, parse, parse_headers
from ..retrieval.cache import AlignerCache
from .config import ServerConfig, Upstream
from ._text import clip
from .errors import ProxyError

__all__ = ["ModelRouter", "align_key", "split_model_suffix"]

log = logging.getLogger("selfalign.server")
# Only letters (and the spaces/dots/hyphens of country names) count as a country
# suffix, so provider versions such as Vertex's "claude-3-5-sonnet@20240620" pass untouched.
_SUFFIX = re.compile(r"[A-Za-z][A-Za-z .'-]*")


def split_model_suffix(model: str) -> tuple[str, str | None]:
    """``"gpt-4o@ro"`` -> ``("gpt-4o", "ro")``; a model without a country suffix comes back unchanged."""
    base, sep, suffix = model.rpartition("@")
    if sep and base and _SUFFIX.fullmatch(suffix):
        return base, suffix
    return model, None


def align_key(options: Any, headers: Mapping[str, str], suffix_country: str | None, config: ServerConfig,
              aligners: AlignerCache) -> AlignOptions | None:
    """Merge the request's choices over the server's defaults, normalised; None means "inject nothing"."""
    chosen = merge(parse(options, "selfalign"), parse_headers(headers), {"country": suffix_country},
                   defaults=config.options())
    key = aligners.key(chosen)
    if key is not None and key.country and not key.profile and (warning := coverage_warning_once(key.country)):
        log.warning(warning)  # once per country and process, the first time a request uses it
    return key


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
            raise ProxyError(404, f"unknown model {clip(model)}: this proxy serves {', '.join(self.names)}",
                             param="model", code="model_not_found")
        return up
