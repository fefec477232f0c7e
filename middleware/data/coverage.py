"""How much of the probe set a country's answers cover, and the warning when that is too little.

A country that answers few probes gives the retriever little to choose from: a message about
women and work may get demonstrations about immigration because nothing closer is answered.
``demos``, ``chat`` and ``serve`` show :func:`coverage_warning` once per country.
"""

from __future__ import annotations

import threading

from .answers import load_answers
from .countries import Country, resolve_country
from .probes import load_probes

__all__ = ["MIN_COVERAGE", "coverage", "coverage_warning", "coverage_warning_once"]

MIN_COVERAGE = 100
"""Fewer answered probes than this draws a warning (the paper used 237 probes; 100 keeps every WVS category)."""


def coverage(country: str | Country) -> dict:
    """``{"country", "name", "answered", "probes", "sources": {source: n}, "categories": {category: {"answered", "probes"}}}``."""
    answers = load_answers(country)
    probes = [p for p in load_probes("en") if p.codes]
    categories: dict[str, dict[str, int]] = {}
    for p in probes:
        c = categories.setdefault(p.category or "(none)", {"answered": 0, "probes": 0})
        c["probes"] += 1
        c["answered"] += p.wvs_id in answers.answers
    return {"country": answers.country, "name": answers.name, "answered": len(answers.answers),
            "probes": len(probes), "sources": dict(sorted(answers.counts_by_source().items())),
            "categories": categories}


def coverage_warning(country: str | Country, minimum: int = MIN_COVERAGE) -> str | None:
    """A one-line warning when the country answers fewer than ``minimum`` probes, else None."""
    c = country if isinstance(country, Country) else resolve_country(country)
    n = len(load_answers(c).answers)
    if n >= minimum:
        return None
    return (f"{c.name} answers only {n} of the WVS probes (fewer than {minimum}): demonstrations may be off-topic; "
            f"see `selfalign profiles list`, or build its answers from the WVS respondent file "
            f"(`selfalign profiles build --wvs FILE.csv`)")


_warned: set[str] = set()
_lock = threading.Lock()


def coverage_warning_once(country: str | Country) -> str | None:
    """:func:`coverage_warning`, but only the first time this process asks about the country."""
    c = country if isinstance(country, Country) else resolve_country(country)
    with _lock:
        if c.alpha3 in _warned:
            return None
        _warned.add(c.alpha3)
    return coverage_warning(c)
