"""The probe experiment: build every prompt, get (cached) responses, turn them into per-probe rows.

For each language/country pair the test probes are the probes with an answer for the country
(its majority answer is the target); demonstrations come from the same answered probes, never
the test probe itself. Conditions per probe: ``zero-shot``, one per strategy (demonstrations in
retrieval order, best first) and, with ``shuffle_orders``, ``orders`` reshuffles of each
strategy's demonstrations. Identical prompts (e.g. two strategies choosing the same
demonstrations) are asked once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..options import AlignOptions
from ..retrieval.cache import aligner_for
from ..data.answers import CountryAnswer, answer_for, load_answers
from ..data.countries import PAPER_PAIRS, Country, default_language, resolve_country, resolve_language
from ..errors import InputError, NoAnswersError, ProfileError
from ..data.probes import Probe, available_languages, load_probes
from ..data.profile import Statement, ValueProfile, probe_key
from ..retrieval.strategies import get_strategy, instruction_of
from ..models.registry import EVAL_MODEL
from .backends import Backend, Request, get_backend, is_local
from .cache import NullCache, ResponseCache, cache_key, default_cache_path
from .metrics import normalize_logprobs, share_counts
from .parse import parse_answer
from .prompts import ZERO_SHOT, EvalPrompt, build_prompt, reshuffle

__all__ = ["EvalConfig", "EvalPair", "Row", "EvalRun", "resolve_pairs", "load_pair", "run_eval", "strategies_arg",
           "ZERO_SHOT", "PAPER_STRATEGIES"]

PAPER_STRATEGIES = ("chrf", "chrf-category", "random", "random-category")


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

    def __post_init__(self) -> None:
        if self.mode is None:
            self.mode = "exact" if is_local(self.model) else "sample"
        if self.mode not in ("sample", "exact"):
            raise InputError(f"unknown mode {self.mode!r}: use sample or exact", param="mode")
        for s in self.strategies:
            get_strategy(s)
        if self.samples < 1:
            raise InputError("--samples must be at least 1", param="samples")
        AlignOptions(k=self.k, min_margin=self.min_margin)  # their bounds are the aligner's, everywhere
        if self.limit is not None and self.limit < 1:
            raise InputError("--limit must be at least 1", param="limit")
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
                "probes": self.probes, "limit": self.limit, "k": self.k, "seed": self.seed,
                "shuffle_orders": self.orders if self.shuffle_orders else 0,
                "tolerance": self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE[self.mode],
                # The sample-mode default sits a hair under 1 to absorb float noise; it means "below 100%".
                "misaligned_below": round(self.misaligned_threshold(), 6),
                "misaligned_rule": ("p(majority) < 1 (not every valid answer is the majority one)"
                                    if self.mode == "sample" and self.misaligned_below is None else
                                    f"p(majority) < {self.misaligned_threshold()}"),
                "bootstrap": self.n_boot, "min_margin": self.min_margin}

    def misaligned_threshold(self) -> float:
        from .metrics import EXACT_MISALIGNED_BELOW, SAMPLE_MISALIGNED_BELOW

        if self.misaligned_below is not None:
            return self.misaligned_below
        return EXACT_MISALIGNED_BELOW if self.mode == "exact" else SAMPLE_MISALIGNED_BELOW

    def effective_tolerance(self) -> float:
        from .metrics import DEFAULT_TOLERANCE

        return self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE[self.mode]


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


# --------------------------------------------------------------------------- inputs


def _arora_dir(spec: str) -> Path | None:
    if spec == "builtin":
        return None
    if not spec.startswith("arora:") or not spec[len("arora:"):]:
        raise ProfileError(f"--probes must be builtin or arora:DIR, got {spec!r}")
    path = Path(spec[len("arora:"):]).expanduser()
    if not path.is_dir():
        raise ProfileError(f"Arora et al. probe folder not found: {path}")
    return path


def _languages_with_probes(spec: str) -> list[str]:
    d = _arora_dir(spec)
    if d is None:
        return available_languages()
    return [l for l in PAPER_PAIRS if (d / f"{l}.csv").is_file()]


def resolve_pairs(language: str | None = None, country: str | None = None, pairs: str | None = None,
                  probes: str = "builtin") -> tuple[list[tuple[str, str]], list[str]]:
    """The (language, alpha3) pairs to run and notes on paper pairs skipped; bad input raises SelfAlignError."""
    notes: list[str] = []
    if pairs:
        if language or country:
            raise InputError("give either --pairs or --language/--country, not both", param="pairs")
        if pairs.strip().lower() == "paper":
            have = set(_languages_with_probes(probes))
            out = []
            for lang, a3 in PAPER_PAIRS.items():
                if lang not in have:
                    notes.append(f"{lang}-{a3}: no {lang} probes yet ({probes})")
                elif not load_answers(a3).answers:
                    notes.append(f"{lang}-{a3}: no survey answers")
                else:
                    out.append((lang, a3))
            if not out:
                raise NoAnswersError(f"no paper pair has both probes and answers ({probes})")
            return out, notes
        out = []
        for item in pairs.split(","):
            lang, sep, c = item.strip().replace(":", "-").partition("-")
            if not sep or not c:
                raise InputError(f"--pairs takes 'paper' or LANG-COUNTRY items (e.g. en-us,de-de), got {item!r}",
                                     param="pairs")
            out.append((resolve_language(lang), resolve_country(c).alpha3))
        return list(dict.fromkeys(out)), notes
    if language is None and country is None:
        raise InputError("give --language and/or --country (e.g. --language ro --country ro), or --pairs paper",
                             param="language")
    if country is None:
        lang = resolve_language(language)
        return [(lang, PAPER_PAIRS[lang])], notes
    c = resolve_country(country)
    lang = resolve_language(language) if language else default_language(c)
    return [(lang, c.alpha3)], notes


def load_pair(language: str, country: str, probes: str = "builtin", limit: int | None = None) -> EvalPair:
    c = resolve_country(country)
    d = _arora_dir(probes)
    if d is None:
        all_probes = load_probes(language)
    else:
        from ..data.arora import load_arora

        path = d / f"{language}.csv"
        if not path.is_file():
            raise ProfileError(f"no Arora et al. probes for {language!r}: {path} not found")
        all_probes, _ = load_arora(path, language)
    country_answers = load_answers(c)
    answers: dict[str, CountryAnswer] = {}
    pool: dict[str, Probe] = {}
    for p in all_probes:
        a = answer_for(p, country_answers)
        if a is not None and p.id not in pool:
            answers[p.id] = a
            pool[p.id] = p
    if not pool:
        raise NoAnswersError(f"no survey answers for {c} on the {language} probes ({probes}): nothing to evaluate")
    statements = [Statement(text=p.fill(answers[p.id].majority), key=probe_key(p.template), probe_id=p.id,
                            category=p.category, margin=answers[p.id].margin) for p in pool.values()]
    profile = ValueProfile(name=f"{c.alpha3.lower()}-{language}", language=language, statements=statements,
                           subject=f"people in {c.name}")
    test = list(pool.values())[:limit] if limit else list(pool.values())
    return EvalPair(language, c, test, answers, pool, profile)


# --------------------------------------------------------------------------- prompts


def _int_seed(*parts: Any) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _conditions(pair: EvalPair, probe: Probe, config: EvalConfig) -> list[tuple[str, str | None, int, EvalPrompt]]:
    """(condition, strategy, order, prompt) for every condition of one probe."""
    out = [(ZERO_SHOT, None, 0, build_prompt(probe, config.seed))]
    query = probe_key(probe.template)
    for strategy in config.strategies:
        # A fresh seeded aligner per probe: random draws do not depend on run order or --limit.
        aligner = aligner_for(language=pair.language, k=config.k, strategy=strategy, profile=pair.profile,
                              seed=_int_seed(config.seed, strategy, probe.id), min_margin=config.min_margin)
        demos = [(pair.pool[d.probe_id], pair.answers[d.probe_id].majority)
                 for d in aligner.demonstrations(query, exclude=[probe.id])]
        instruction = instruction_of(get_strategy(strategy))
        instruction = instruction.format(country=pair.country.name) if instruction else None
        out.append((strategy, strategy, 0, build_prompt(probe, config.seed, demos, instruction)))
        if config.shuffle_orders:
            for i in range(1, config.orders + 1):
                shuffled = reshuffle(demos, config.seed, probe.id, strategy, i)
                out.append((f"{strategy}@order{i}", strategy, i, build_prompt(probe, config.seed, shuffled,
                                                                               instruction)))
    return out


# --------------------------------------------------------------------------- run


def _open_cache(config: EvalConfig):
    if not config.use_cache:
        return NullCache()
    return ResponseCache(config.cache or default_cache_path())


def run_eval(config: EvalConfig, backend: Backend | None = None, progress: bool = True,
             console: Any = None) -> EvalRun:
    """Run the study of ``config``; ``backend`` overrides the model (tests use a scripted one)."""
    from .summary import summarise

    t0 = time.perf_counter()
    pairs = [load_pair(l, c, config.probes, config.limit) for l, c in config.pairs]
    backend = backend or get_backend(config.model, config.api_base, config.concurrency, config.max_tokens,
                                     progress=progress, seed=config.seed)
    if config.mode == "exact" and not backend.supports_exact:
        raise InputError(f"{config.model} cannot give log-probabilities: use --mode sample", param="mode")
    settings = backend.settings(config.mode, config.samples)

    rows: list[Row] = []
    requests: dict[str, Request] = {}
    for pair in pairs:
        for probe in pair.probes:
            answer = pair.answers[probe.id]
            for condition, strategy, order, prompt in _conditions(pair, probe, config):
                key = cache_key(backend.name, config.mode, {"prompt": prompt.text, "options": list(prompt.options),
                                                            **settings})
                requests.setdefault(key, Request(key, prompt))
                rows.append(Row(pair.label, pair.language, pair.country.alpha3, probe.id, probe.wvs_id,
                                probe.category, condition, strategy, order, answer.majority, prompt.options,
                                prompt.order, answer.shares, prompt.demo_ids, key))

    cache = _open_cache(config)
    try:
        values = cache.get_many(requests)
        todo = [r for k, r in requests.items() if k not in values]
        cached = len(requests) - len(todo)
        bar: _Bar | None = None  # made once the backend is prepared (loading a model can take a while)

        def on_result(req: Request, value: Any) -> None:
            values[req.key] = value
            cache.put(req.key, backend.name, config.mode, value)
            if bar is not None:
                bar.advance()

        if todo:
            backend.prepare()
        bar = _Bar(len(todo), f"{config.model} · {config.mode}", console) if progress and todo else None
        try:
            backend.run(todo, config.mode, config.samples, on_result)
        finally:
            if bar is not None:
                bar.close()
    finally:
        cache.close()

    for row in rows:
        value = values.get(row.key)
        if config.mode == "exact":
            row.logprobs = value
            row.dist = None if value is None else normalize_logprobs(value)
        else:
            row.responses = list(value or [])
            parsed = [parse_answer(t, row.options) for t in row.responses]
            row.counts = (parsed.count(0), parsed.count(1), parsed.count(None))
            row.dist = share_counts(row.counts)

    run = EvalRun(config, pairs, rows, len(requests), cached, backend.calls,
                  getattr(backend, "sequence_passes", None), time.perf_counter() - t0,
                  prompts={k: r.prompt for k, r in requests.items()})
    run.results = summarise(run)
    run.results["signatures"] = _signatures(pairs, config)
    return run


def _signatures(pairs: list[EvalPair], config: EvalConfig) -> dict[str, str]:
    """The reproducibility signature of each pair and strategy (middleware.retrieval.signature)."""
    from ..retrieval.signature import signature

    return {f"{pair.label} {s}": signature(aligner_for(language=pair.language, k=config.k, strategy=s,
                                                       profile=pair.profile, min_margin=config.min_margin))
            for pair in pairs for s in config.strategies}


class _Bar:
    """A rich progress bar with ETA on stderr; one task, advanced per response."""

    def __init__(self, total: int, label: str, console: Any = None):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                  console=console or Console(stderr=True), transient=False)
        self._task = self._progress.add_task(label, total=total)
        self._progress.start()

    def advance(self) -> None:
        self._progress.advance(self._task)

    def close(self) -> None:
        self._progress.stop()


def strategies_arg(value: str) -> list[str]:
    """``all`` -> the paper's four; otherwise a comma-separated list of registered strategies."""
    if value.strip().lower() == "all":
        return list(PAPER_STRATEGIES)
    out = [v.strip() for v in value.split(",") if v.strip()]
    for s in out:
        get_strategy(s)
    return list(dict.fromkeys(out)) or ["chrf"]

