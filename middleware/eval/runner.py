"""The probe experiment: build every prompt, get (cached) responses, turn them into per-probe rows.

For each language/country pair the test probes are the probes with an answer for the country
(its majority answer is the target); demonstrations come from the same answered probes, never
the test probe itself. Conditions per probe: ``zero-shot``, one per strategy (demonstrations in
retrieval order, best first) and, with ``shuffle_orders``, ``orders`` reshuffles of each
strategy's demonstrations. Identical prompts (e.g. two strategies choosing the same
demonstrations) are asked once.

Two injections (``EvalConfig.injection``): ``paper`` writes the demonstrations as solved items
in the user prompt, as Choenni & Shutova did; ``system`` sends what the product sends: the probe
as the user message through :meth:`SelfAligner.align` (the same options, strategy and format as
serve and chat), and exact mode scores the options after the messages rendered the way the
model sees them (:meth:`Runtime.format_chat`). Configuration lives in :mod:`.config`, the rows
and the run in :mod:`.records`, aggregation in :mod:`.summary`.
"""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path
from typing import Any

from ..retrieval.cache import aligner_for
from ..data.answers import CountryAnswer, answer_for, load_answers
from ..data.countries import PAPER_PAIRS, default_language, resolve_country, resolve_language
from ..data.probes import Probe, available_languages, load_probes
from ..data.profile import Statement, ValueProfile, probe_key
from ..errors import InputError, NoAnswersError, ProfileError
from ..options import AlignOptions
from ..retrieval.formats import DEFAULT_FORMAT
from ..retrieval.strategies import get_strategy, instruction_of
from .backends import Backend, Request, get_backend
from .cache import NullCache, ResponseCache, cache_key, default_cache_path
from .config import ZERO_SHOT, EvalConfig
from .metrics import normalize_logprobs, share_counts
from .parse import parse_answer
from .prompts import EvalPrompt, build_prompt, reshuffle
from .records import EvalPair, EvalRun, Row
from .summary import summarise

__all__ = ["resolve_pairs", "load_pair", "run_eval"]


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


def load_pair(language: str, country: str, probes: str = "builtin", limit: int | None = None,
              sample: int | None = None, seed: int = 0) -> EvalPair:
    """The pair's answered probes; ``limit`` keeps the first N, ``sample`` a seeded random N (in probe order,
    the same N for every run with this seed, whatever the strategies)."""
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
    def profile(minority: bool) -> ValueProfile:
        # The control keeps each statement's key (so retrieval picks the same statements) and margin
        # (so min_margin leaves out the same ones); only the completion is the other answer.
        statements = [Statement(text=p.fill(answers[p.id].majority ^ minority), key=probe_key(p.template),
                                probe_id=p.id, category=p.category, margin=answers[p.id].margin)
                      for p in pool.values()]
        return ValueProfile(name=f"{c.alpha3.lower()}-{language}" + ("-minority" if minority else ""),
                            language=language, statements=statements, subject=f"people in {c.name}")

    test = list(pool.values())
    if sample is not None and sample < len(test):
        drawn = sample_order(len(test), f"{seed}:sample:{language}-{c.alpha3}")[:sample]
        test = [test[i] for i in sorted(drawn)]
    test = test[:limit] if limit else test
    return EvalPair(language, c, test, answers, pool, profile(False), profile(True))


def sample_order(n: int, key: str) -> list[int]:
    """A seeded order of range(n); `--sample k` takes its first k, so a larger sample holds every smaller one
    and the response cache serves the probes they share."""
    rng = random.Random(key)
    # random.sample alone is not nested (it switches algorithm with k); its draw of 20 opens the order so
    # that results made before the order existed (--sample 10 and 20) keep their probes.
    head = rng.sample(range(n), min(n, 20))
    rest = sorted(set(range(n)) - set(head))
    rng.shuffle(rest)
    return head + rest


# --------------------------------------------------------------------------- prompts


def _int_seed(*parts: Any) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _conditions(pair: EvalPair, probe: Probe, config: EvalConfig) -> list[tuple[str, str | None, int, EvalPrompt]]:
    """(condition, label, order, prompt) for every condition of one probe."""
    base = build_prompt(probe, config.seed)
    system = config.injection == "system"
    user = [{"role": "user", "content": base.text}]
    out = [(ZERO_SHOT, None, 0, base.with_messages(user) if system else base)]
    query = probe_key(probe.template)
    for label, strategy, fmt, minority in config.conditions():
        profile = pair.minority_profile if minority else pair.profile
        # A fresh seeded aligner per probe: random draws do not depend on run order or --limit, and the
        # minority control draws exactly the statements its majority condition draws.
        seed = _int_seed(config.seed, strategy, probe.id)
        if system:
            # The product's own path: the options to the aligner cache, then align_with_demonstrations.
            options = AlignOptions(country=pair.country, language=pair.language, profile=profile, k=config.k,
                                   strategy=strategy, min_margin=config.min_margin, format=fmt,
                                   min_relevance=config.min_relevance)
            messages, demos = aligner_for(options, seed=seed).align_with_demonstrations(
                user, exclude=[probe.id])
            out.append((label, label, 0, base.with_messages(messages, tuple(d.probe_id for d in demos))))
            continue
        aligner = aligner_for(language=pair.language, k=config.k, strategy=strategy, profile=profile,
                              seed=seed, min_margin=config.min_margin)
        demos = [(pair.pool[d.probe_id], pair.answers[d.probe_id].majority ^ minority)
                 for d in aligner.demonstrations(query, exclude=[probe.id])]
        instruction = instruction_of(get_strategy(strategy))
        instruction = instruction.format(country=pair.country.name) if instruction else None
        out.append((label, label, 0, build_prompt(probe, config.seed, demos, instruction)))
        if config.shuffle_orders:
            for i in range(1, config.orders + 1):
                shuffled = reshuffle(demos, config.seed, probe.id, strategy, i)
                out.append((f"{label}@order{i}", label, i, build_prompt(probe, config.seed, shuffled,
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
    t0 = time.perf_counter()
    pairs = [load_pair(l, c, config.probes, config.limit, config.sample, config.seed) for l, c in config.pairs]
    backend = backend or get_backend(config.model, config.api_base, config.concurrency, config.max_tokens,
                                     progress=progress, seed=config.seed, api_scoring=config.api_scoring)
    if config.mode == "exact" and not backend.supports_exact:
        raise InputError(f"{config.model} cannot give log-probabilities: use --mode sample", param="mode")
    settings = backend.settings(config.mode, config.samples)

    rows: list[Row] = []
    requests: dict[str, Request] = {}
    for pair in pairs:
        for probe in pair.probes:
            answer = pair.answers[probe.id]
            for condition, strategy, order, prompt in _conditions(pair, probe, config):
                # A paper prompt is keyed by its text (so earlier caches stay valid), a product request by
                # its messages.
                content = {"prompt": prompt.text} if prompt.chat is None else {"messages": list(prompt.chat)}
                key = cache_key(backend.name, config.mode, {**content, "options": list(prompt.options), **settings})
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

    system = config.injection == "system"
    out = {}
    for pair in pairs:
        for s in config.strategies:
            for fmt in config.formats if system else [None]:
                # The paper's prompt never meets the relevance decision: its demonstrations are the k best.
                aligner = aligner_for(language=pair.language, k=config.k, strategy=s, profile=pair.profile,
                                      min_margin=config.min_margin, format=fmt or DEFAULT_FORMAT,
                                      min_relevance=config.min_relevance if system else 0)
                label = f"{s}@{fmt}" if system and len(config.formats) > 1 else s
                out[f"{pair.label} {label}"] = signature(aligner, injection=None if system else "paper")
    return out


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


