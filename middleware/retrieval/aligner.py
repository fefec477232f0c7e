"""The self-alignment step: pick demonstrations for a message and put them in the system message."""

from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .._messages import message_text
from ..data.countries import Country, default_language, resolve_country, resolve_language
from ..errors import InputError
from ..data.profile import ValueProfile, builtin_profile
from ..options import DEFAULT_K, DEFAULT_STRATEGY, AlignOptions, is_off
from .strategies import get_strategy

__all__ = ["Demonstration", "SelfAligner", "align", "message_text"]

# Near-ties are kept by default: leaving out demonstrations below a margin of 0.05 or 0.10 changed
# the evaluator's improved share by one probe of 64 (71.9% -> 73.4%, CI 59-83%) and 1-JSD by 0.01,
# within noise on the embedded model (docs/profiles.md, "Near-ties and min_margin").
DEFAULT_MIN_MARGIN = 0.0
DEFAULT_HEADER = "The following statements reflect the values of {subject}. Let them guide your answer:"


@dataclass(frozen=True)
class Demonstration:
    """One injected statement: its text, its chrF++ score against the message, its probe and category."""

    text: str
    score: float
    probe_id: str | None
    category: str

    def to_dict(self) -> dict:
        return asdict(self)


class SelfAligner:
    """Selects a country's (or a user's) WVS demonstrations for a message and injects them.

    >>> aligner = SelfAligner(country="ro", language="en")
    >>> [d.text for d in aligner.demonstrations("Should women work for pay?")][:1]  # doctest: +SKIP
    """

    def __init__(self, country: str | Country | None = None, language: str | None = None, k: int = DEFAULT_K,
                 strategy: str = DEFAULT_STRATEGY, profile: ValueProfile | str | Path | None = None,
                 seed: int | None = None, header: str = DEFAULT_HEADER, min_margin: float = DEFAULT_MIN_MARGIN):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}", param="k")
        if isinstance(min_margin, bool) or not isinstance(min_margin, (int, float)) or not 0 <= min_margin < 1:
            raise InputError(f"min_margin must be a number in [0, 1), got {min_margin!r}", param="min_margin")
        self.min_margin = float(min_margin)
        self.k = k
        self.strategy_name = strategy
        self._strategy = get_strategy(strategy)
        self._rng = random.Random(seed)
        self.header = header
        self.country = resolve_country(country) if isinstance(country, str) else country
        if profile is not None:
            if not isinstance(profile, ValueProfile):
                from ..data.user_profile import load_user_profile

                profile = load_user_profile(profile, language=language)
            self.profile = profile
        else:
            if self.country is None:
                raise InputError("give a country (e.g. country='ro') or a profile", param="country")
            lang = resolve_language(language) if language else default_language(self.country)
            self.profile = builtin_profile(self.country, lang)
        self.language = self.profile.language
        # A near-tie (e.g. 52/48) is weak evidence of the majority; statements without a known margin
        # (mean-derived answers, user profiles) are kept.
        self._strong = np.array([s.margin is None or s.margin >= self.min_margin for s in self.profile.statements],
                                dtype=bool)

    def __repr__(self) -> str:
        return (f"SelfAligner(profile={self.profile.name!r}, language={self.language!r}, k={self.k}, "
                f"strategy={self.strategy_name!r}, min_margin={self.min_margin})")

    def demonstrations(self, text: str, exclude: Iterable[str] = ()) -> list[Demonstration]:
        """Up to k demonstrations for ``text``, best first; ``exclude`` drops probe ids (e.g. the test probe)."""
        if not text or not text.strip():
            return []
        statements = self.profile.statements
        # The message is the hypothesis, each statement a reference (see middleware.retrieval.chrf).
        scores = self.profile.scores(text)
        allowed = self._strong.copy()
        excluded = set(exclude)
        if excluded:
            allowed &= np.array([s.probe_id not in excluded for s in statements], dtype=bool)
        picked = self._strategy(self.profile.categories, text, self.k, self._rng, allowed, scores)
        return [Demonstration(statements[i].text, float(scores[i]), statements[i].probe_id, statements[i].category)
                for i in picked]

    def system_block(self, demonstrations: Sequence[Demonstration]) -> str:
        lines = "\n".join(f"- {d.text}" for d in demonstrations)
        return f"{self.header.format(subject=self.profile.subject or 'the user')}\n{lines}"

    def align(self, messages: Sequence[dict]) -> list[dict]:
        """A new message list with the demonstrations in the system message; the input is not changed."""
        return self.align_with_demonstrations(messages)[0]

    def align_with_demonstrations(self, messages: Sequence[dict]) -> tuple[list[dict], list[Demonstration]]:
        if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) for m in messages):
            raise InputError("messages must be a list of {'role': ..., 'content': ...} objects", param="messages")
        out = copy.deepcopy(list(messages))
        query = next((message_text(m.get("content")) for m in reversed(out) if m.get("role") == "user"), "")
        demos = self.demonstrations(query)
        if not demos:
            return out, []
        block = self.system_block(demos)
        first = out[0] if out else None
        if first is not None and first.get("role") in ("system", "developer"):
            content = first.get("content")
            if isinstance(content, list):
                first["content"] = [{"type": "text", "text": block}] + content
            else:
                existing = message_text(content)
                first["content"] = f"{block}\n\n{existing}" if existing else block
        else:
            out.insert(0, {"role": "system", "content": block})
        return out, demos


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
