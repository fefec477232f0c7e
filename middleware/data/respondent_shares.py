"""``wvs7-shares-12``: WVS Wave 7 answer shares computed from the respondent-level files, Q1-Q259.

One file holds, for 12 countries (Greece and Malaysia among them), the shares of every answer code
per question twice: ``weighted`` by the WVS design weight ``W_WEIGHT`` and ``unweighted`` (plain
counts, the convention of the other two share files), with ``n_valid`` respondents per question.
A question missing from a country's entry was not asked there (every respondent has a negative
"not asked" code), so the file also says which questions each country asked: for those it did not,
no weaker source may answer either (:func:`middleware.data.build.drop_not_asked`).

Which weighting the profiles ship was decided from :func:`weighting_report` (docs/profiles.md):
``unweighted`` by default, ``weighted`` with ``selfalign profiles build --weighting weighted``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .answers import CountryAnswer
from .collapse import collapse
from .countries import resolve_country
from ..errors import InputError
from .probes import Probe

__all__ = ["RESPONDENT_SHARES_FILE", "WEIGHTINGS", "DEFAULT_WEIGHTING", "RespondentShares", "check_weighting",
           "source_name",
           "read_respondent_shares", "from_respondent_shares", "off_scale", "weighting_report"]

RESPONDENT_SHARES_FILE = "wvs7-shares-12/shares.json"
WEIGHTINGS = ("unweighted", "weighted")
# Unweighted: the weighted and unweighted majorities differ only on six near-ties (margins <= 0.05), and
# unweighted shares are the convention of every other share file, so no earlier majority changes.
DEFAULT_WEIGHTING = "unweighted"

Answers = dict[str, dict[str, CountryAnswer]]


def check_weighting(weighting: str) -> str:
    if weighting not in WEIGHTINGS:
        raise InputError(f"weighting {weighting!r}: use one of {', '.join(WEIGHTINGS)}", param="weighting")
    return weighting


def source_name(weighting: str = DEFAULT_WEIGHTING) -> str:
    """The ``source`` its answers carry: the weighting is part of the provenance."""
    return "wvs7-shares-12" if weighting == "unweighted" else f"wvs7-shares-12-{weighting}"


@dataclass(frozen=True)
class RespondentShares:
    weighting: str
    shares: dict[str, dict[str, dict[int, float]]]  # ISO3 -> WVS id -> code -> share
    n_valid: dict[str, dict[str, int]]  # ISO3 -> WVS id -> respondents with a valid answer

    def asked(self, country: str) -> set[str]:
        """The questions the country asked (those its respondents answered)."""
        return set(self.shares.get(country, {}))

    def flat(self) -> dict[str, dict[str, dict[str, float]]]:
        """In the layout of the other share files, ``{ISO3: {"Q1": {"1": share}}}``."""
        return {c: {q: {str(k): v for k, v in d.items()} for q, d in qs.items()} for c, qs in self.shares.items()}


def read_respondent_shares(path: Path, weighting: str = DEFAULT_WEIGHTING) -> RespondentShares:
    check_weighting(weighting)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        raw, n_valid = data[weighting], data["n_valid"]
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read answer shares: {e}", param="data_dir") from None
    except (KeyError, TypeError):
        raise InputError(f"{path}: expected {{\"weighted\": ..., \"unweighted\": ..., \"n_valid\": ...}} "
                         f"(the layout of wvs7-shares-12/shares.json)", param="data_dir") from None
    shares, counts = {}, {}
    for country, questions in raw.items():
        a3 = resolve_country(country).alpha3
        shares[a3] = {q: {int(float(k)): float(v) for k, v in d.items()} for q, d in questions.items() if d}
        counts[a3] = {q: int(n) for q, n in n_valid.get(country, {}).items()}
    return RespondentShares(weighting, shares, counts)


def off_scale(data: RespondentShares, scales: Mapping[str, set[int]]) -> list[tuple[str, str, tuple[int, ...]]]:
    """(country, question, codes) where a country's answers use codes outside the WVS scale of the question.

    Such a question was asked differently there (another scale), so the probe's collapse rule does
    not apply to it; ``scales`` maps a WVS id to its valid (non-negative) codes in the codebook.
    """
    out = []
    for country, questions in sorted(data.shares.items()):
        for qid, dist in sorted(questions.items()):
            valid = scales.get(qid)
            extra = tuple(sorted(c for c, v in dist.items() if v > 0 and valid is not None and c not in valid))
            if extra:
                out.append((country, qid, extra))
    return out


def from_respondent_shares(data: RespondentShares, probes: Iterable[Probe],
                           skip: Iterable[tuple[str, str]] = ()) -> Answers:
    """Each probe collapsed from the country's shares; ``skip`` holds (country, question) left unanswered."""
    skip = set(skip)
    source = source_name(data.weighting)
    out: Answers = {}
    for country, questions in data.shares.items():
        for p in probes:
            dist = questions.get(p.wvs_id)
            if p.codes is None or not dist or (country, p.wvs_id) in skip:
                continue
            if (a := collapse(p, dist, source, n=data.n_valid.get(country, {}).get(p.wvs_id))):
                out.setdefault(country, {})[p.id] = a
    return out


def weighting_report(path: Path, probes: Iterable[Probe], others: Answers) -> dict:
    """The numbers the default weighting was chosen from.

    ``both``: country-probes both weightings answer; ``weighted_vs_unweighted``: those whose majority
    differs between them; ``shared_with_others`` and ``<weighting>_vs_others``: the same against the
    answers the other sources give (``others``, by country and probe).
    """
    probes = list(probes)
    built = {w: from_respondent_shares(read_respondent_shares(path, w), probes) for w in WEIGHTINGS}
    u, w = built["unweighted"], built["weighted"]
    report: dict = {"both": 0, "weighted_vs_unweighted": [], "shared_with_others": 0,
                    "weighted_vs_others": [], "unweighted_vs_others": []}
    for country in sorted(set(u) | set(w)):
        for pid in sorted(set(u.get(country, {})) | set(w.get(country, {}))):
            a, b = u.get(country, {}).get(pid), w.get(country, {}).get(pid)
            if a and b:
                report["both"] += 1
                if a.majority != b.majority:
                    report["weighted_vs_unweighted"].append((country, pid, a.shares[0], b.shares[0]))
            o = others.get(country, {}).get(pid)
            if o is None or not (a and b):
                continue
            report["shared_with_others"] += 1
            for name, mine in (("unweighted", a), ("weighted", b)):
                if mine.majority != o.majority:
                    report[f"{name}_vs_others"].append((country, pid, o.source))
    return report
