"""``GET /v1/selfalign/options``: what a request's ``selfalign`` object may choose, with display names.

The inspector builds its pickers from it; other clients may too. Strategies come from the registry
(plugins included), formats from theirs, countries from the built-in answers, profiles from those
registered at start-up, bounds from the option fields.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from ...options import is_off, option_fields
from .._json import dumps

if TYPE_CHECKING:
    from ..handlers import Proxy

__all__ = ["option_choices"]


@lru_cache(maxsize=1)
def _countries() -> tuple[dict, ...]:
    from ...data.answers import available_countries
    from ...data.countries import resolve_country

    out = [{"id": code, "name": resolve_country(code).name} for code in available_countries()]
    return tuple(sorted(out, key=lambda c: c["name"]))


def _bounds(name: str) -> dict:
    """A number option's bounds and default, as its AlignOptions field declares them."""
    (f,) = [f for f in option_fields() if f.name == name]
    return {"minimum": f.metadata["minimum"], "maximum": f.metadata["maximum"], "default": f.default}


def option_choices(proxy: "Proxy") -> bytes:
    from ...data.countries import LANGUAGES, resolve_country
    from ...data.probes import available_languages
    from ...retrieval.formats import FORMATS
    from ...retrieval.strategies import STRATEGIES, instruction_of, scorer_of

    default = None if proxy.default_key is None else proxy.default_key.options()
    if default and default.get("country") and not is_off(default["country"]):
        default["country"] = resolve_country(default["country"]).alpha3  # the ids listed under "country"
    return dumps({
        "object": "selfalign.options",
        "country": list(_countries()),
        "profile": [{"id": p["id"], "name": p["description"] or p["id"], "language": p["language"],
                     "statements": p["statements"]} for p in proxy.profiles.describe()],
        "language": [{"id": code, "name": LANGUAGES.get(code, code)} for code in available_languages()],
        "strategy": [{"id": name, "scorer": scorer_of(fn), "instruction": instruction_of(fn) is not None}
                     for name, fn in STRATEGIES.items()],
        "format": [{"id": name, "description": " ".join((fn.__doc__ or "").split("\n\n")[0].split())}
                   for name, fn in FORMATS.items()],
        "k": _bounds("k"),
        "min_relevance": _bounds("min_relevance"),
        "default": default,
    })
