"""What an evaluation produces: the pairs it ran, one :class:`Row` per probe and condition, the :class:`EvalRun`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.answers import CountryAnswer
from ..data.countries import Country
from ..data.probes import Probe
from ..data.profile import ValueProfile
from .config import EvalConfig
from .prompts import EvalPrompt

__all__ = ["EvalPair", "Row", "EvalRun"]


@dataclass
class EvalPair:
    language: str
    country: Country
    probes: list[Probe]
    """Test probes (those with an answer), after --limit."""
    answers: dict[str, CountryAnswer]
    """By probe id, for every answered probe (test probes and demonstration pool)."""
    pool: dict[str, Probe]
    profile: ValueProfile
    minority_profile: ValueProfile | None = None
    """The same statements completed with the minority answer (the control)."""

    @property
    def label(self) -> str:
        return f"{self.language}-{self.country.alpha3}"


@dataclass
class Row:
    """One probe in one condition."""

    pair: str
    language: str
    country: str
    probe_id: str
    wvs_id: str
    category: str
    condition: str
    strategy: str | None
    """The condition's label without a reshuffle suffix (e.g. ``chrf``, ``chrf@turns``, ``chrf+minority``)."""
    order: int
    """0: demonstrations as retrieved; i >= 1: the i-th reshuffle."""
    majority: int
    options: tuple[str, str]
    option_order: tuple[int, int]
    shares: tuple[float, float] | None
    demo_ids: tuple[str, ...]
    key: str
    dist: tuple[float, float] | None = None
    counts: tuple[int, int, int] | None = None
    """Sample mode: answers for option 1, option 2, invalid."""
    responses: list[str] | None = None
    logprobs: list[float] | None = None
    # Filled in by summary.annotate():
    p: float | None = None
    """p(majority) in this condition."""
    p_before: float | None = None
    misaligned: bool = False
    verdict: str | None = None
    error_reduction: float | None = None
    alignment: float | None = None
    """1 - Jensen-Shannon distance to the survey shares."""


@dataclass
class EvalRun:
    config: EvalConfig
    pairs: list[EvalPair]
    rows: list[Row]
    requests: int
    cached: int
    model_calls: int
    sequence_passes: int | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    prompts: dict[str, EvalPrompt] = field(default_factory=dict)
    """Each distinct prompt by its cache key (rows refer to them by ``Row.key``)."""
