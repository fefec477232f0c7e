"""Value profiles: the statements an aligner draws its demonstrations from.

A built-in profile is a language's probes completed with a country's majority answers.
A user profile is a YAML/JSON file of statements or of answered probes (see
:mod:`middleware.data.user_profile`). Either way the aligner sees one thing: a list of
:class:`Statement` and their retrieval keys; the chrF++ index over those keys belongs to the
retrieval layer (:func:`middleware.retrieval.chrf.profile_scores`), so data knows nothing of retrieval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from .answers import answer_for, load_answers, available_countries
from .countries import Country, LANGUAGES
from ..errors import NoAnswersError
from .probes import BLANK, load_probes

__all__ = ["Statement", "ValueProfile", "builtin_profile", "probe_key"]


@dataclass(frozen=True)
class Statement:
    """A completed value statement and the key a message is compared with."""

    text: str
    """The demonstration as injected, e.g. "I disagree that men make better political leaders than women do.\""""
    key: str
    """What an incoming message is compared with. For probes: the template without its blank,
    so retrieval is the same for every country of a language and only the completion differs."""
    probe_id: str | None = None
    category: str = ""
    margin: float | None = None
    """Survey margin of the majority (share of the majority option minus the other's); None when unknown."""


@dataclass
class ValueProfile:
    """The statements an aligner draws from: a country's majority answers, or a user's own."""

    name: str
    language: str
    statements: list[Statement]
    description: str = ""
    subject: str = field(default="")
    """Whose values these are, for the system message: "people in Romania", "the user"."""
    shared_keys: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """Keys of a chrF++ index shared with other profiles (a built-in profile: all its language's probes,
    the same for every country); empty: the profile's own keys."""
    shared_rows: tuple[int, ...] = field(default=(), repr=False, compare=False)
    """For each statement, its row in the shared index."""

    @cached_property
    def categories(self) -> list[str]:
        return [s.category for s in self.statements]

    def __len__(self) -> int:
        return len(self.statements)


def probe_key(template: str) -> str:
    return " ".join(template.replace(BLANK, " ").split())


@lru_cache(maxsize=256)
def builtin_profile(country: Country, language: str) -> ValueProfile:
    """A language's probes completed with the country's majority answers (probes without figures are left out)."""
    answers = load_answers(country)
    probes = load_probes(language)
    statements, rows = [], []
    for row, p in enumerate(probes):
        a = answer_for(p, answers)
        if a is not None:
            statements.append(Statement(text=p.fill(a.majority), key=probe_key(p.template), probe_id=p.id,
                                        category=p.category,
                                        margin=a.margin))
            rows.append(row)
    if not statements:
        have = ", ".join(available_countries()) or "none"
        raise NoAnswersError(f"no survey answers for {country}: countries with answers are {have}")
    return ValueProfile(name=f"{country.alpha3.lower()}-{language}", language=language, statements=statements,
                        description=f"WVS Wave 7 majority answers of {country.name}, probes in {LANGUAGES[language]}",
                        subject=f"people in {country.name}",
                        shared_keys=tuple(probe_key(p.template) for p in probes), shared_rows=tuple(rows))
