"""Collapsing a WVS answer distribution into a probe's two options: one rule for every share source."""

from __future__ import annotations

from typing import Mapping

from .answers import CountryAnswer
from .probes import Probe

__all__ = ["collapse"]


def collapse(probe: Probe, code_shares: Mapping[int, float], source: str, n: float | None = None) -> CountryAnswer | None:
    """Collapse a distribution over WVS codes into the probe's two options (None if no majority)."""
    if probe.codes is None:
        return None
    s = [sum(code_shares.get(c, 0.0) for c in group) for group in probe.codes]
    total = s[0] + s[1]
    if total <= 0 or s[0] == s[1]:
        return None
    shares = (s[0] / total, s[1] / total)
    return CountryAnswer(majority=0 if s[0] > s[1] else 1, shares=shares, source=source, rule=probe.rule(),
                         n=None if n is None else round(n * total, 3))
