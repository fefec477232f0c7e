"""Audit of the weaker answer sources against published shares.

GlobalOpinionQA rows matched by question text (``goqa``) and country means (``wvs7-means``)
answer the probes of countries without published shares, Greece and Malaysia among them.
Where a country and probe also have published shares, the two can be compared: this module
counts how often their majorities agree and names a cause for each disagreement, before and
after the fixes the audit led to (see ``MIN_LABEL_FIT``, ``mislabelled_countries`` and
``MIN_MEAN_DISTANCE`` in :mod:`middleware.data.build`, and docs/profiles.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .answers import PUBLISHED_SOURCES, CountryAnswer
from .probes import Probe

__all__ = ["Disagreement", "SourceAudit", "AuditReport", "compare_sources", "audit_build", "agreement_by_country",
           "WEAK_SOURCES", "NEAR_TIE"]

WEAK_SOURCES = ("goqa", "wvs7-means")
NEAR_TIE = 0.1  # a majority margin below this (55/45) is a near-tie: either side is within sampling noise

Answers = dict[str, dict[str, CountryAnswer]]


@dataclass(frozen=True)
class Disagreement:
    country: str
    probe_id: str
    source: str
    weak: CountryAnswer
    published: CountryAnswer
    cause: str

    def to_dict(self) -> dict:
        return {"country": self.country, "probe": self.probe_id, "source": self.source, "cause": self.cause,
                "weak_shares": self.weak.shares, "published_shares": self.published.shares,
                "published_source": self.published.source}


@dataclass
class SourceAudit:
    source: str
    pairs: int = 0
    agree: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.agree / self.pairs if self.pairs else None

    def causes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.disagreements:
            out[d.cause] = out.get(d.cause, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict:
        return {"source": self.source, "pairs": self.pairs, "agree": self.agree, "rate": self.rate,
                "causes": self.causes(), "disagreements": [d.to_dict() for d in self.disagreements]}


@dataclass
class AuditReport:
    before: dict[str, SourceAudit]
    after: dict[str, SourceAudit]
    mislabelled: dict[str, str | None]

    def to_dict(self) -> dict:
        return {"before": {k: v.to_dict() for k, v in self.before.items()},
                "after": {k: v.to_dict() for k, v in self.after.items()},
                "mislabelled_countries": self.mislabelled}


def _published(sources: dict[str, Answers]) -> dict[tuple[str, str], CountryAnswer]:
    out: dict[tuple[str, str], CountryAnswer] = {}
    for name in PUBLISHED_SOURCES:  # priority order: the first published answer is the one the profile keeps
        for country, by_probe in sources.get(name, {}).items():
            for pid, a in by_probe.items():
                out.setdefault((country, pid), a)
    return out


def _cause(source: str, weak: CountryAnswer, pub: CountryAnswer, country: str,
           mislabelled: dict[str, str | None], dropped: bool) -> str:
    if source == "goqa" and country in mislabelled:
        return "mislabelled country in the source"
    if source == "goqa" and dropped:
        return "wrong text match"
    if source == "wvs7-means":
        return "different collapse rule (mean vs majority)"
    if min(pub.margin, weak.margin) < NEAR_TIE:
        return "near-tie"
    return "source figures differ"


def compare_sources(sources: dict[str, Answers], mislabelled: dict[str, str | None] | None = None,
                    kept: dict[str, Answers] | None = None) -> dict[str, SourceAudit]:
    """Per weak source: majorities compared with published shares over every country and probe both have.

    ``kept`` (the sources after the fixes) lets a disagreement the label check removed be named a
    wrong text match.
    """
    pub = _published(sources)
    out = {}
    for name in WEAK_SOURCES:
        audit = SourceAudit(name)
        for country, by_probe in sorted(sources.get(name, {}).items()):
            for pid, a in sorted(by_probe.items()):
                p = pub.get((country, pid))
                if p is None:
                    continue
                audit.pairs += 1
                if a.majority == p.majority:
                    audit.agree += 1
                    continue
                dropped = kept is not None and pid not in kept.get(name, {}).get(country, {})
                audit.disagreements.append(Disagreement(country, pid, name, a, p,
                                                        _cause(name, a, p, country, mislabelled or {}, dropped)))
        # A scale read the wrong way round shows on every country of that question, not on one.
        for pid in {d.probe_id for d in audit.disagreements}:
            n = sum(1 for (c, q) in pub if q == pid and pid in sources.get(name, {}).get(c, {}))
            wrong = [d for d in audit.disagreements if d.probe_id == pid]
            if len(wrong) >= 2 and len(wrong) * 2 > n:
                audit.disagreements = [d if d.probe_id != pid else
                                       Disagreement(d.country, pid, name, d.weak, d.published, "reversed scale")
                                       for d in audit.disagreements]
        out[name] = audit
    return out


def audit_build(probes: list[Probe], data_dir: Path, sources: dict[str, Answers] | None = None,
                weighting: str | None = None) -> AuditReport:
    """The weaker sources against published shares, as built before the audit's fixes and with them.

    ``sources`` are the sources as built (with the fixes), when the caller has them already;
    ``weighting`` is that of ``wvs7-shares-12`` (default: the build's default).
    """
    from .build import build_sources, goqa_distributions, mislabelled_countries, published_distributions, \
        published_sets
    from .respondent_shares import DEFAULT_WEIGHTING

    d, weighting = Path(data_dir), weighting or DEFAULT_WEIGHTING
    after = sources if sources is not None else build_sources(probes, data_dir=d, weighting=weighting)
    before_sources = build_sources(probes, data_dir=d, checks=False, weighting=weighting)
    published = published_distributions(published_sets(d, weighting))
    rows = goqa_distributions(d / "goqa-sample/eval.json", probes, d / "wvs7-shares/wvs_questions.json",
                              d / "wvs7-meta/codebook.json")
    mislabelled = mislabelled_countries(rows, published)
    return AuditReport(before=compare_sources(before_sources, mislabelled, kept=after),
                       after=compare_sources(after), mislabelled=mislabelled)


def agreement_by_country(answers: Answers, reference: Answers) -> dict[str, tuple[int, int, list[str]]]:
    """Per country: probes both answer, how many majorities agree, and the probes that disagree.

    Compares e.g. the goqa- and mean-derived answers Greece and Malaysia had before with
    ``wvs7-shares-12``, or the shipped profiles with it.
    """
    out = {}
    for country in sorted(set(answers) & set(reference)):
        shared = sorted(set(answers[country]) & set(reference[country]))
        off = [pid for pid in shared if answers[country][pid].majority != reference[country][pid].majority]
        if shared:
            out[country] = (len(shared), len(shared) - len(off), off)
    return out
