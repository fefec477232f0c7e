"""The self-alignment step: pick demonstrations for a message and put them in the system message."""

from __future__ import annotations

import copy
import dataclasses
import random
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._messages import message_text
from ..data.countries import Country, resolve_country, resolve_language
from ..errors import InputError
from ..data.profile import ValueProfile, builtin_profile
from ..options import DEFAULT_K, DEFAULT_MIN_MARGIN, DEFAULT_MIN_RELEVANCE, DEFAULT_STRATEGY, AlignOptions
from .relevance import FOLLOW_UP_REASON, Relevance, conversation_query
from .chrf import profile_scores
from .demonstration import Demonstration, Selection
from .formats import DEFAULT_FORMAT, DEFAULT_HEADER, FormatContext, Injection, get_format
from .strategies import get_strategy, instruction_of, scorer_of

__all__ = ["SelfAligner", "AUTO"]

AUTO = "auto"


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
                 min_margin: float = DEFAULT_MIN_MARGIN, min_relevance: float = DEFAULT_MIN_RELEVANCE,
                 format: str = DEFAULT_FORMAT):
        self._strategy = get_strategy(strategy)  # an unknown name: UnknownStrategyError, listing the valid ones
        # The bounds of every option are AlignOptions' alone: the proxy, the CLI and Python refuse alike.
        AlignOptions(k=k, min_margin=min_margin, strategy=strategy, min_relevance=min_relevance,
                     format=format)
        self.min_margin = float(min_margin)
        self.min_relevance = float(min_relevance)
        self._strong_masks: dict[int, tuple[ValueProfile, np.ndarray]] = {}
        self.k = k
        self.strategy_name = strategy
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
        # The semantic strategies embed each message for retrieval anyway: their gate reads that embedding.
        if scorer_of(self._strategy) in ("semantic", "hybrid"):
            from .semantic import available

            self._semantic_gate = available()
        else:
            self._semantic_gate = False

    def __repr__(self) -> str:
        return (f"SelfAligner(profile={self.profile.name!r}, language={self.language!r}, k={self.k}, "
                f"strategy={self.strategy_name!r}, min_margin={self.min_margin}, min_relevance={self.min_relevance}, "
                f"format={self.format_name!r})")

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
        """The k demonstrations for ``text``, best first, without the relevance gate or the floor (the
        paper's setting, which the evaluator uses); ``exclude`` drops probe ids (e.g. the test probe)."""
        return self._retrieve(text, exclude, floor=False)

    def select(self, conversation: str | Sequence[dict], exclude: Iterable[str] = ()) -> Selection:
        """What a request gets: nothing when the message is not about values (``min_relevance``), else up
        to k demonstrations, those far below the best left out (k is a maximum).

        ``conversation`` is a message text or an OpenAI message list; a short follow-up ("Why?") is
        judged and retrieved with the user turns before it. ``min_relevance=0`` is the paper's setting:
        always k demonstrations, the last user message alone.
        """
        if isinstance(conversation, str):
            conversation = [{"role": "user", "content": conversation}]
        query = next((message_text(m.get("content")) for m in reversed(conversation)
                      if isinstance(m, dict) and m.get("role") == "user"), "")
        semantic = self._semantic_gate
        context = conversation_query(conversation) if self.min_relevance > 0 else query
        if query.strip() and context != query:
            # A follow-up ("Why?", "Are you sure?") says nothing alone, and both gates score some of them high
            # by their form: it is judged, and retrieved for, with the user turns before it (one judgement).
            query, relevance = context, Relevance.judge(context, self.min_relevance, semantic)
            if relevance.inject:
                relevance = dataclasses.replace(relevance, reason=FOLLOW_UP_REASON)
        else:
            relevance = Relevance.judge(query, self.min_relevance, semantic)
        if not relevance.inject:
            return Selection([], relevance)
        return Selection(self._retrieve(query, exclude, floor=self.min_relevance > 0), relevance)

    def _retrieve(self, text: str, exclude: Iterable[str], floor: bool) -> list[Demonstration]:
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
        if floor:
            picked = above_floor(scores, picked, scorer)
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
                                  ) -> tuple[list[dict], Selection]:
        """(the messages with the demonstrations injected, the :class:`Selection`);
        ``selection.relevance`` says whether the request was about values. A request that gets
        nothing is returned unchanged (a copy)."""
        if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) for m in messages):
            raise InputError("messages must be a list of {'role': ..., 'content': ...} objects", param="messages")
        out = copy.deepcopy(list(messages))
        demos = self.select(out, exclude)
        if not demos.relevance.inject:
            return out, demos
        injected = self.injection(demos)
        block = injected.system
        if not block and not injected.turns:
            return out, demos
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
    return profile_scores(profile, text)


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

# k is a maximum: a statement scoring below this share of the best one is left out (a message touching
# one topic gets that topic's statements, not five). Per scorer, chosen on the dev split of
# benchmarks/data/relevance (docs/retrieval.md, "Relevance").
FLOOR = {"chrf": 0.8, "semantic": 0.97, "hybrid": 0.95}


def above_floor(scores: np.ndarray, picked: list[int], scorer: str) -> list[int]:
    """``picked`` (best first) without the statements below the floor relative to the best."""
    if not picked:
        return picked
    floor = FLOOR.get(scorer, 0.0) * float(scores[picked[0]])
    return [i for i in picked if scores[i] >= floor]
