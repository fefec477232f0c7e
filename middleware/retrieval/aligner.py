"""The self-alignment step: pick demonstrations for a message and put them in the system message."""

from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .._messages import message_text
from ..data.countries import Country, resolve_country, resolve_language
from ..errors import InputError
from ..data.profile import ValueProfile, builtin_profile
from ..options import DEFAULT_K, DEFAULT_STRATEGY, AlignOptions, is_off
from .formats import DEFAULT_FORMAT, DEFAULT_HEADER, FormatContext, Injection, get_format
from .strategies import get_strategy, instruction_of, scorer_of

__all__ = ["Demonstration", "SelfAligner", "align", "message_text", "AUTO"]

AUTO = "auto"

# Near-ties are kept by default: leaving out demonstrations below a margin of 0.05 or 0.10 changed
# the evaluator's improved share by one probe of 64 (71.9% -> 73.4%, CI 59-83%) and 1-JSD by 0.01,
# within noise on the embedded model (docs/profiles.md, "Near-ties and min_margin").
DEFAULT_MIN_MARGIN = 0.0


@dataclass(frozen=True)
class Demonstration:
    """One injected statement: its text, its score against the message (chrF++, or semantic similarity with
    the semantic strategies), its probe, category and language."""

    text: str
    score: float
    probe_id: str | None
    category: str
    language: str | None = None
    """Language the demonstration is in (chosen per message with language="auto")."""

    def to_dict(self) -> dict:
        return asdict(self)


class SelfAligner:
    """Selects a country's (or a user's) WVS demonstrations for a message and injects them.

    ``language="auto"`` (the default, also for ``None``) detects each message's language: with probes
    in it, demonstrations are retrieved and rendered in it; otherwise they are retrieved across
    languages by sentence embeddings and rendered in ``fallback_language``. An explicit language
    fixes both (the paper's setting). A user profile has one language and is used as it is.

    >>> aligner = SelfAligner(country="ro", language="en")
    >>> [d.text for d in aligner.demonstrations("Should women work for pay?")][:1]  # doctest: +SKIP
    """

    def __init__(self, country: str | Country | None = None, language: str | None = AUTO, k: int = DEFAULT_K,
                 strategy: str = DEFAULT_STRATEGY, profile: ValueProfile | str | Path | None = None,
                 seed: int | None = None, header: str = DEFAULT_HEADER, fallback_language: str = "en",
                 min_margin: float = DEFAULT_MIN_MARGIN, format: str = DEFAULT_FORMAT):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}", param="k")
        if isinstance(min_margin, bool) or not isinstance(min_margin, (int, float)) or not 0 <= min_margin < 1:
            raise InputError(f"min_margin must be a number in [0, 1), got {min_margin!r}", param="min_margin")
        self.min_margin = float(min_margin)
        self._strong_masks: dict[int, tuple[ValueProfile, np.ndarray]] = {}
        self.k = k
        self.strategy_name = strategy
        self._strategy = get_strategy(strategy)
        self._rng = random.Random(seed)
        self.header = header
        self.format_name = format
        self._format = get_format(format)
        self.country = resolve_country(country) if isinstance(country, str) else country
        auto = language is None or (isinstance(language, str) and language.strip().lower() == AUTO)
        self.auto = False
        if profile is not None:
            if not isinstance(profile, ValueProfile):
                from ..data.user_profile import load_user_profile

                profile = load_user_profile(profile, language=None if auto else language)
            self.profile = profile
        else:
            if self.country is None:
                raise InputError("give a country (e.g. country='ro') or a profile", param="country")
            self.auto = auto
            # Auto renders in the fallback language whenever the message's has no probes.
            lang = resolve_language(fallback_language if auto else language)
            self.profile = builtin_profile(self.country, lang)
        self.fallback_language = self.profile.language
        self.language = AUTO if self.auto else self.profile.language
        self.instruction = instruction_of(self._strategy)

    def __repr__(self) -> str:
        return (f"SelfAligner(profile={self.profile.name!r}, language={self.language!r}, k={self.k}, "
                f"strategy={self.strategy_name!r}, min_margin={self.min_margin}, format={self.format_name!r})")

    def _strong(self, profile: ValueProfile) -> np.ndarray:
        """Statements that may be demonstrations: a near-tie (e.g. 52/48) is weak evidence of the majority;
        statements without a known margin (mean-derived answers, user profiles) are kept."""
        held = self._strong_masks.get(id(profile))
        if held is None:
            mask = np.array([s.margin is None or s.margin >= self.min_margin for s in profile.statements], dtype=bool)
            # Holding the profile keeps its id from being reused by another object.
            held = self._strong_masks[id(profile)] = (profile, mask)
        return held[1]

    def choose(self, text: str) -> tuple[ValueProfile, str, str]:
        """(profile, scorer, query) for ``text``: the profile in the message's language when we have it.

        The scorer is the strategy's, except that chrF++ (which only matches within one language)
        gives way to sentence embeddings when the message's language has no probes.
        """
        scorer = scorer_of(self._strategy)
        if not self.auto:
            return self.profile, scorer, text
        from .language import detect_language, is_latin_serbian, serbian_to_cyrillic

        lang = detect_language(text)
        if lang is not None and lang in _probe_languages():
            if lang == "sr" and is_latin_serbian(text):
                text = serbian_to_cyrillic(text)  # our Serbian probes are Cyrillic
            return builtin_profile(self.country, lang), scorer, text
        if scorer in ("chrf", "hybrid"):
            from .semantic import available

            # Without the semantic extra, chrF++ in the fallback language is all there is (weak across languages).
            scorer = "semantic" if available() else "chrf"
        return self.profile, scorer, text

    def demonstrations(self, text: str, exclude: Iterable[str] = ()) -> list[Demonstration]:
        """Up to k demonstrations for ``text``, best first; ``exclude`` drops probe ids (e.g. the test probe)."""
        if not text or not text.strip():
            return []
        profile, scorer, query = self.choose(text)
        statements = profile.statements
        scores = _SCORE[scorer](profile, query)
        allowed = self._strong(profile).copy()
        excluded = set(exclude)
        if excluded:
            allowed &= np.array([s.probe_id not in excluded for s in statements], dtype=bool)
        picked = self._strategy(profile.categories, query, self.k, self._rng, allowed, scores)
        return [Demonstration(statements[i].text, float(scores[i]), statements[i].probe_id, statements[i].category,
                              profile.language) for i in picked]

    def system_block(self, demonstrations: Sequence[Demonstration]) -> str:
        """The text put in the system message: the strategy's instruction and/or the demonstrations
        (with the ``turns`` format the demonstrations are messages instead: see :meth:`injection`)."""
        return self.injection(demonstrations).system

    def injection(self, demonstrations: Sequence[Demonstration]) -> Injection:
        """What :meth:`align` adds: the strategy's instruction, then the format's system text and turns."""
        parts = []
        if self.instruction and self.country is not None:
            parts.append(self.instruction.format(country=self.country.name))
        turns: tuple[dict, ...] = ()
        if demonstrations:
            ctx = FormatContext(self.header, self.profile.subject or "the user", self.country, self._statement)
            written = self._format(demonstrations, ctx)
            if written.system:
                parts.append(written.system)
            turns = written.turns
        return Injection("\n\n".join(parts), turns)

    def _statement(self, demonstration: Demonstration):
        """The profile statement behind ``demonstration`` (for formats that show a share or a question)."""
        profile = self.profile
        if demonstration.language != profile.language and self.country is not None and demonstration.language:
            profile = builtin_profile(self.country, demonstration.language)
        by_id = profile.__dict__.get("_statements_by_id")
        if by_id is None:
            by_id = profile.__dict__["_statements_by_id"] = {s.probe_id: s for s in profile.statements}
        return by_id.get(demonstration.probe_id)

    def align(self, messages: Sequence[dict], exclude: Iterable[str] = ()) -> list[dict]:
        """A new message list with the demonstrations in the system message; the input is not changed.
        ``exclude`` drops probe ids from the demonstrations (the evaluator leaves the test probe out)."""
        return self.align_with_demonstrations(messages, exclude)[0]

    def align_with_demonstrations(self, messages: Sequence[dict], exclude: Iterable[str] = ()
                                  ) -> tuple[list[dict], list[Demonstration]]:
        if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) for m in messages):
            raise InputError("messages must be a list of {'role': ..., 'content': ...} objects", param="messages")
        out = copy.deepcopy(list(messages))
        query = next((message_text(m.get("content")) for m in reversed(out) if m.get("role") == "user"), "")
        demos = self.demonstrations(query, exclude)
        injected = self.injection(demos)
        block = injected.system
        if not block and not injected.turns:
            return out, []
        first = out[0] if out else None
        if first is not None and first.get("role") in ("system", "developer"):
            if block:
                content = first.get("content")
                if isinstance(content, list):
                    first["content"] = [{"type": "text", "text": block}] + content
                else:
                    existing = message_text(content)
                    first["content"] = f"{block}\n\n{existing}" if existing else block
        elif block:
            out.insert(0, {"role": "system", "content": block})
        if injected.turns:
            at = 1 if out and out[0].get("role") in ("system", "developer") else 0
            out[at:at] = [dict(t) for t in injected.turns]
        return out, demos


@lru_cache(maxsize=1)
def _probe_languages() -> frozenset[str]:
    from ..data.probes import available_languages

    return frozenset(available_languages())


def _chrf_scores(profile: ValueProfile, text: str) -> np.ndarray:
    # The message is the hypothesis, each statement a reference (see middleware.retrieval.chrf).
    return profile.scores(text)


def _keys(profile: ValueProfile) -> list[str]:
    keys = profile.__dict__.get("_retrieval_keys")
    if keys is None:
        keys = profile.__dict__["_retrieval_keys"] = [s.key for s in profile.statements]
    return keys


def _semantic_scores(profile: ValueProfile, text: str) -> np.ndarray:
    from .semantic import semantic_scores

    return semantic_scores(_keys(profile), text)


# Reciprocal rank fusion constant (Cormack et al. 2009): damps the weight of the very top ranks.
_RRF_K = 60


def _hybrid_scores(profile: ValueProfile, text: str) -> np.ndarray:
    """Reciprocal rank fusion of chrF++ and semantic ranks, x 1000 for readability."""
    fused = np.zeros(len(profile.statements))
    for scores in (_chrf_scores(profile, text), _semantic_scores(profile, text)):
        rank = np.empty(len(scores))
        rank[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
        fused += 1.0 / (_RRF_K + rank)
    return fused * 1000


_SCORE = {"chrf": _chrf_scores, "semantic": _semantic_scores, "hybrid": _hybrid_scores}


def align(messages: Sequence[dict], **options: Any) -> list[dict]:
    """Pure function form of :meth:`SelfAligner.align`: ``options`` are
    :class:`~middleware.options.AlignOptions`' (country, language, k, strategy, profile; a profile may be
    a file path here) and ``seed``. Aligners come from the cache the Python integrations share.

    Random strategies draw from the cached aligner's generator: give a seed for reproducible draws.
    """
    from .cache import python_cache

    seed = options.pop("seed", None)
    cache = python_cache()
    chosen = AlignOptions(**options)
    key = cache.key(chosen)
    if key is None:
        if is_off(chosen.country):  # country="none": the messages as they are (a copy, like align's)
            return copy.deepcopy(list(messages))
        raise InputError("give a country (e.g. country='ro') or a profile", param="country")
    return cache.get(key, seed).align(messages)
