"""Country answers: for each probe, the option a country's majority chose, with its provenance.

A country's answers live in ``profiles/answers/<ISO3>.json``. Each answer says which
source it came from and how WVS codes were collapsed into the probe's two options, so
a demonstration can always be traced back to survey figures. Nothing is invented: a
probe without figures for a country has no answer and is never used as a demonstration.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._files import write_atomic
from .._paths import profiles_dir
from .countries import Country, resolve_country

__all__ = ["answer_for", "CountryAnswer", "CountryAnswers", "load_answers", "available_countries", "SOURCE_PRIORITY",
           "PUBLISHED_SOURCES"]

# Which figure wins when two sources answer the same probe: the respondent file, then
# published shares, then shares matched by question text, then a country mean.
# wvs7-shares wins over the other published files where it holds a question (USA, Germany):
# it covers Q1-Q259, so a country it holds keeps one source throughout and its committed
# answers stay as they were (Germany's equal wvs7-shares-12 exactly). wvs7-shares-12
# (respondent-level shares, Q1-Q259, 12 countries) wins over wvs7-shares-46 (Q1-Q198): its
# unweighted shares equal that file's to 1e-4, and it also covers Q94-Q105 and Q199-Q259.
# Only one of its two weightings is built at a time (``profiles build --weighting``).
SOURCE_PRIORITY = ("wvs", "wvs7-shares", "wvs7-shares-12", "wvs7-shares-12-weighted", "wvs7-shares-46", "goqa",
                   "wvs7-means")
# Sources whose answers are published per-country shares of the WVS question itself.
PUBLISHED_SOURCES = ("wvs", "wvs7-shares", "wvs7-shares-12", "wvs7-shares-12-weighted", "wvs7-shares-46")


class CountryAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    majority: Literal[0, 1] = Field(description="index of the option the majority chose")
    shares: tuple[float, float] | None = Field(
        default=None, description="share of each option among answers in either option; None when derived from a mean")
    source: str
    derived_from: Literal["shares", "mean"] = "shares"
    rule: str = ""
    n: float | None = Field(default=None, description="(weighted) respondents behind the shares, when known")

    @model_validator(mode="after")
    def _consistent(self) -> "CountryAnswer":
        if self.derived_from == "mean" and self.shares is not None:
            raise ValueError("an answer derived from a mean has no shares")
        if self.shares is not None and abs(sum(self.shares) - 1) > 1e-6:
            raise ValueError(f"shares must sum to 1: {self.shares}")
        return self

    @property
    def margin(self) -> float | None:
        """Share of the majority option minus the other's (0 = a tie, 1 = unanimous); None without shares."""
        return None if self.shares is None else abs(self.shares[0] - self.shares[1])


class CountryAnswers(BaseModel):
    country: str = Field(description="ISO alpha-3")
    name: str
    answers: dict[str, CountryAnswer] = Field(default_factory=dict, description="by WVS question id")

    def save(self, directory: Path) -> Path:
        """Write atomically, so an interrupted build never leaves half a file."""
        path = directory / f"{self.country}.json"
        data = self.model_dump(mode="json", exclude_none=True)
        data["answers"] = dict(sorted(data["answers"].items(), key=lambda kv: _qkey(kv[0])))
        # One answer per line: small files and readable diffs.
        body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in data["answers"].items())
        head = json.dumps({k: v for k, v in data.items() if k != "answers"}, ensure_ascii=False)[:-1]
        return write_atomic(path, f"{head}, \"answers\": {{\n{body}\n}}}}\n")

    def counts_by_source(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.answers.values():
            out[a.source] = out.get(a.source, 0) + 1
        return out


def _qkey(qid: str) -> tuple[int, str]:
    digits = "".join(ch for ch in qid if ch.isdigit())
    return (int(digits) if digits else 0, qid)


def answers_dir() -> Path:
    return profiles_dir() / "answers"


@lru_cache(maxsize=None)
def _load(alpha3: str, directory: str) -> CountryAnswers:
    path = Path(directory) / f"{alpha3}.json"
    if not path.is_file():
        c = resolve_country(alpha3)
        return CountryAnswers(country=c.alpha3, name=c.name)
    return CountryAnswers.model_validate_json(path.read_text(encoding="utf-8"))


def load_answers(country: str | Country, directory: Path | None = None) -> CountryAnswers:
    c = country if isinstance(country, Country) else resolve_country(country)
    return _load(c.alpha3, str(directory or answers_dir()))


def available_countries(directory: Path | None = None) -> list[str]:
    base = directory or answers_dir()
    return sorted(p.stem for p in base.glob("*.json"))


def answer_for(probe, answers: CountryAnswers) -> CountryAnswer | None:
    """The country's answer for a probe, re-oriented when the probe lists the options the other way round.

    Stored answers follow the built-in probes' code mapping; a probe from another set (e.g. the
    Arora et al. files) gets an answer only when its codes are the same mapping or its mirror.
    """
    from .probes import master_codes

    a = answers.answers.get(probe.wvs_id)
    ours = master_codes().get(probe.wvs_id)
    if a is None or probe.codes is None or ours is None:
        return None
    if tuple(map(tuple, probe.codes)) == ours:
        return a
    if tuple(map(tuple, probe.codes)) == ours[::-1]:
        shares = None if a.shares is None else (a.shares[1], a.shares[0])
        return a.model_copy(update={"majority": 1 - a.majority, "shares": shares,
                                    "rule": f"{a.rule} (options in reverse order)"})
    return None
