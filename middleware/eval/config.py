"""What an evaluation is asked to do: :class:`EvalConfig`, its conditions and the strategies argument."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..models.registry import EVAL_MODEL
from ..options import DEFAULT_MIN_RELEVANCE, AlignOptions
from ..retrieval.formats import DEFAULT_FORMAT, FORMATS, get_format
from ..retrieval.strategies import get_strategy
from .backends import is_local
from .prompts import ZERO_SHOT

__all__ = ["EvalConfig", "ZERO_SHOT", "PAPER_STRATEGIES", "INJECTIONS", "NO_DEMONSTRATIONS", "strategies_arg",
           "formats_arg"]

PAPER_STRATEGIES = ("chrf", "chrf-category", "random", "random-category")
INJECTIONS = ("paper", "system")
"""paper: demonstrations as solved items in the user prompt (Choenni & Shutova); system: the product's request."""
NO_DEMONSTRATIONS = ("cultural",)
"""Strategies that inject an instruction only: no minority control, the same text in every format."""


@dataclass
class EvalConfig:
    model: str = EVAL_MODEL
    pairs: list[tuple[str, str]] = field(default_factory=lambda: [("en", "USA")])
    """(language, ISO alpha-3 country) pairs."""
    strategies: list[str] = field(default_factory=lambda: ["chrf"])
    mode: str | None = None
    """``sample`` or ``exact``; None: exact for local models, sample otherwise."""
    samples: int = 10
    probes: str = "builtin"
    """``builtin`` or ``arora:DIR``."""
    limit: int | None = None
    sample: int | None = None
    """A seeded random sample of this many test probes per pair (before ``limit``)."""
    shuffle_orders: bool = False
    orders: int = 3
    seed: int = 0
    k: int = 5
    concurrency: int = 8
    api_base: str | None = None
    cache: Path | None = None
    use_cache: bool = True
    tolerance: float | None = None
    misaligned_below: float | None = None
    max_tokens: int | None = None
    n_boot: int = 2000
    min_margin: float = 0.0
    """Leave probes whose survey margin is below this out of the demonstrations (see SelfAligner)."""
    min_relevance: float = DEFAULT_MIN_RELEVANCE
    """With ``injection="system"``: the product's relevance gate (a probe the gate turns away gets nothing, as
    a user would); the paper's injection always gives k demonstrations."""
    injection: str = "paper"
    """``paper``: the paper's few-shot user prompt; ``system``: the product's own request (SelfAligner.align)."""
    formats: list[str] = field(default_factory=lambda: [DEFAULT_FORMAT])
    """Injection formats compared with ``injection="system"`` (the paper's prompt has one form)."""
    minority: bool = False
    """Also run each demonstration strategy with the same statements completed with the minority answer."""
    api_scoring: str = "top"
    """Exact mode over an API: ``top`` (the answer's top_logprobs) or ``echo`` (the prompt's own log-probabilities
    from a text completion with echo, rendered as for a base model: vLLM, ``selfalign serve``)."""

    def __post_init__(self) -> None:
        if self.mode is None:
            self.mode = "exact" if is_local(self.model) else "sample"
        if self.mode not in ("sample", "exact"):
            raise InputError(f"unknown mode {self.mode!r}: use sample or exact", param="mode")
        for s in self.strategies:
            get_strategy(s)
        from .backends import API_SCORINGS

        if self.api_scoring not in API_SCORINGS:
            raise InputError(f"unknown API scoring {self.api_scoring!r}: use {' or '.join(API_SCORINGS)}",
                             param="api_scoring")
        if self.api_scoring != "top" and (is_local(self.model) or self.mode != "exact"):
            raise InputError("--api-scoring applies to exact mode with an API model (local/ models score options "
                             "directly)", param="api_scoring")
        if self.injection not in INJECTIONS:
            raise InputError(f"unknown injection {self.injection!r}: use {' or '.join(INJECTIONS)}", param="injection")
        if not self.formats:
            raise InputError("give at least one --format", param="format")
        for f in self.formats:
            get_format(f)
        if self.injection == "system" and self.shuffle_orders:
            raise InputError("--shuffle-orders applies to --injection paper only (the aligner orders the "
                             "product's demonstrations)", param="shuffle_orders")
        if self.injection == "paper" and self.formats != [DEFAULT_FORMAT]:
            raise InputError("--format applies to --injection system only (the paper's prompt has one form)",
                             param="format")
        if self.samples < 1:
            raise InputError("--samples must be at least 1", param="samples")
        AlignOptions(k=self.k, min_margin=self.min_margin, min_relevance=self.min_relevance)  # their bounds are the aligner's, everywhere
        if self.limit is not None and self.limit < 1:
            raise InputError("--limit must be at least 1", param="limit")
        if self.sample is not None and self.sample < 1:
            raise InputError("--sample must be at least 1", param="sample")
        if self.orders < 1:
            raise InputError("--orders must be at least 1", param="orders")
        if self.tolerance is not None and not 0 <= self.tolerance < 1:
            raise InputError("--tolerance must be in [0, 1)", param="tolerance")
        if self.misaligned_below is not None and not 0 < self.misaligned_below <= 1:
            raise InputError("--misaligned-below must be in (0, 1]", param="misaligned_below")

    def public(self) -> dict:
        from .metrics import DEFAULT_TOLERANCE

        return {"model": self.model, "api_base": self.api_base, "mode": self.mode,
                "samples": self.samples if self.mode == "sample" else None,
                "pairs": [f"{l}-{c}" for l, c in self.pairs], "strategies": list(self.strategies),
                "probes": self.probes, "limit": self.limit, "sample": self.sample, "k": self.k, "seed": self.seed,
                "shuffle_orders": self.orders if self.shuffle_orders else 0,
                "tolerance": self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE[self.mode],
                # The sample-mode default sits a hair under 1 to absorb float noise; it means "below 100%".
                "misaligned_below": round(self.misaligned_threshold(), 6),
                "misaligned_rule": ("p(majority) < 1 (not every valid answer is the majority one)"
                                    if self.mode == "sample" and self.misaligned_below is None else
                                    f"p(majority) < {self.misaligned_threshold()}"),
                "bootstrap": self.n_boot, "min_margin": self.min_margin, "min_relevance": self.min_relevance,
                "injection": self.injection,
                "formats": list(self.formats) if self.injection == "system" else None,
                "minority_control": self.minority,
                "api_scoring": None if is_local(self.model) or self.mode != "exact" else self.api_scoring}

    def conditions(self) -> list[tuple[str, str, str | None, bool]]:
        """(label, strategy, format, minority) for every aligned condition, in report order.

        The label is the strategy's name, suffixed ``@format`` when several formats are compared and
        ``+minority`` for the control; a strategy without demonstrations (cultural) has no control and,
        its text being the same in every format, runs once.
        """
        out = []
        formats = self.formats if self.injection == "system" else [None]
        for s in self.strategies:
            has_demos = s not in NO_DEMONSTRATIONS
            for f in (formats if has_demos else formats[:1]):
                label = s if (f is None or len(formats) == 1 or not has_demos) else f"{s}@{f}"
                out.append((label, s, f, False))
                if self.minority and has_demos:
                    out.append((f"{label}+minority", s, f, True))
        return out

    def misaligned_threshold(self) -> float:
        from .metrics import EXACT_MISALIGNED_BELOW, SAMPLE_MISALIGNED_BELOW

        if self.misaligned_below is not None:
            return self.misaligned_below
        return EXACT_MISALIGNED_BELOW if self.mode == "exact" else SAMPLE_MISALIGNED_BELOW

    def effective_tolerance(self) -> float:
        from .metrics import DEFAULT_TOLERANCE

        return self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE[self.mode]




def _names_arg(value: str, every: list[str], check, default: str) -> list[str]:
    """``all`` -> ``every``; otherwise a comma-separated list, each name checked, duplicates dropped."""
    if value.strip().lower() == "all":
        return list(every)
    out = [v.strip() for v in value.split(",") if v.strip()]
    for name in out:
        check(name)
    return list(dict.fromkeys(out)) or [default]


def strategies_arg(value: str) -> list[str]:
    """``all`` -> the paper's four; otherwise a comma-separated list of registered strategies."""
    return _names_arg(value, list(PAPER_STRATEGIES), get_strategy, "chrf")


def formats_arg(value: str) -> list[str]:
    """``all`` -> every registered format; otherwise a comma-separated list of them."""
    return _names_arg(value, list(FORMATS), get_format, DEFAULT_FORMAT)
