"""Build country answers from survey figures.

The sources, each turned into per-probe :class:`CountryAnswer` objects:

- ``wvs``: the WVS Wave 7 respondent file (weighted shares, any country in it);
- ``wvs7-shares``: published answer shares per country and question (CultureSPA, 19 countries, Q1-Q259);
- ``wvs7-shares-12``: shares computed from the respondent files, 12 countries, Q1-Q259, unweighted or
  weighted (:mod:`middleware.data.respondent_shares`); it also says which questions a country did not
  ask, and no weaker source answers those (:func:`drop_not_asked`);
- ``wvs7-shares-46``: published answer shares in the same schema (SimLLMCultureDist, 45 countries,
  Q1-Q198 less the knowledge, economic and postmaterialist blocks); where both files hold a
  question they agree to 1e-4 after renormalising (:func:`compare_shares`); ``wvs7-shares`` and
  ``wvs7-shares-12`` win (see ``SOURCE_PRIORITY``);
- ``goqa``: GlobalOpinionQA rows, matched to WVS ids by question text (rapidfuzz), kept
  only when the match is confident and the answer scale has the WVS number of codes;
- ``wvs7-means``: country means of the "justifiable" items; a mean only says which
  side the majority is on, so those answers carry no shares.

:func:`merge` keeps, per country and probe, the answer of the highest-priority source.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from .answers import SOURCE_PRIORITY, CountryAnswer, CountryAnswers
from .countries import resolve_country
from ..errors import InputError, UnknownCountryError
from .probes import Probe
from .collapse import collapse
from .respondent_shares import (DEFAULT_WEIGHTING, RESPONDENT_SHARES_FILE, RespondentShares, from_respondent_shares,
                                off_scale, read_respondent_shares, source_name)

__all__ = ["collapse", "from_shares", "from_means", "from_goqa", "from_wvs_csv", "merge", "build_all",
           "build_sources", "compare_shares", "goqa_distributions", "mislabelled_countries", "drop_not_asked",
           "codebook_scales", "published_distributions", "published_sets", "respondent_shares",
           "SHARES_FILES", "MIN_LABEL_FIT", "MIN_MEAN_DISTANCE"]

Answers = dict[str, dict[str, CountryAnswer]]  # alpha3 -> probe id -> answer


def _with_codes(probes: Iterable[Probe]) -> list[Probe]:
    return [p for p in probes if p.codes is not None]


# Published-share files in the layout of the shared data: source name -> path under --data-dir.
SHARES_FILES = {"wvs7-shares": "wvs7-shares/proportions_group_by_country.json",
                "wvs7-shares-46": "wvs7-shares-46/shares.json"}


def _read_shares(path: Path | Mapping) -> dict:
    if isinstance(path, Mapping):  # already read (e.g. RespondentShares.flat())
        return dict(path)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read answer shares: {e}", param="data_dir") from None


def from_shares(path: Path, probes: Iterable[Probe], source: str = "wvs7-shares") -> Answers:
    """``{ISO3: {"Q1": {"1": share, ...}}}`` as in wvs7-shares/proportions_group_by_country.json.

    Whether a file's shares keep don't-know in the denominator (wvs7-shares) or sum to 1
    (wvs7-shares-46) does not matter: :func:`collapse` renormalises over the two options.
    """
    data = _read_shares(path)
    out: Answers = {}
    for country, questions in data.items():
        alpha3 = resolve_country(country).alpha3
        for p in _with_codes(probes):
            dist = questions.get(p.wvs_id)
            if dist:
                a = collapse(p, {int(float(k)): float(v) for k, v in dist.items()}, source)
                if a:
                    out.setdefault(alpha3, {})[p.id] = a
    return out


# The means file names items by their wording; these fragments identify the WVS ids.
_MEAN_ITEMS = {
    "claiming government benefits": "Q177", "avoiding a fare": "Q178", "stealing property": "Q179",
    "cheating on taxes": "Q180", "accepting a bribe": "Q181", "homosexuality": "Q182", "prostitution": "Q183",
    "abortion": "Q184", "divorce": "Q185", "sex before marriage": "Q186", "suicide": "Q187", "euthanasia": "Q188",
    "beat his wife": "Q189", "parents beating children": "Q190", "violence against other people": "Q191",
    "terrorism": "Q192", "casual sex": "Q193", "political violence": "Q194", "death penalty": "Q195",
}


def compare_shares(path_a: Path | Mapping, path_b: Path | Mapping) -> tuple[int, float, list[tuple[str, str, float]]]:
    """Questions both share files (or read share tables) hold: (how many, largest code-share difference, those over 1e-4).

    Each distribution is renormalised over its valid codes first, since one file keeps
    don't-know in the denominator and the other does not.
    """
    a, b = _read_shares(path_a), _read_shares(path_b)
    n, worst, over = 0, 0.0, []
    for country in sorted(set(a) & set(b)):
        for qid in sorted(set(a[country]) & set(b[country])):
            da, db = a[country][qid], b[country][qid]
            ta, tb = sum(da.values()), sum(db.values())
            if ta <= 0 or tb <= 0:
                continue
            codes = {int(float(k)) for k in da} | {int(float(k)) for k in db}
            ga = {int(float(k)): v / ta for k, v in da.items()}
            gb = {int(float(k)): v / tb for k, v in db.items()}
            diff = max(abs(ga.get(c, 0.0) - gb.get(c, 0.0)) for c in codes)
            n += 1
            worst = max(worst, diff)
            if diff > 1e-4:
                over.append((country, qid, diff))
    return n, worst, over


# Found by the audit (docs/profiles.md): every mean that disagreed with published shares lay within
# 0.1 of the midpoint (|wvs_score| <= 0.092), where a skewed distribution puts the mean and the
# majority on different sides; such a mean says nothing about the majority.
MIN_MEAN_DISTANCE = 0.1


def from_means(path: Path, probes: Iterable[Probe], checks: bool = True) -> Answers:
    """Country means rescaled to [-1, 1] (-1 = never justifiable): the sign gives the majority side.

    With ``checks`` (the default) a mean closer than ``MIN_MEAN_DISTANCE`` to the midpoint gives no answer.
    """
    by_wvs = defaultdict(list)
    for p in _with_codes(probes):
        by_wvs[p.wvs_id].append(p)
    out: Answers = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            qid = next((q for frag, q in _MEAN_ITEMS.items() if frag in row["question"].lower()), None)
            if qid is None or not row.get("wvs_score"):
                continue
            score = float(row["wvs_score"])
            if score == 0 or (checks and abs(score) < MIN_MEAN_DISTANCE):
                continue
            alpha3 = resolve_country(row["country"]).alpha3
            for p in by_wvs.get(qid, []):
                # The scale runs 1 (never) .. 10 (always); the option holding code 10 is the "justifiable" side.
                high = 0 if 10 in p.codes[0] else 1
                out.setdefault(alpha3, {})[p.id] = CountryAnswer(
                    majority=high if score > 0 else 1 - high, source="wvs7-means", derived_from="mean",
                    rule=f"sign of the country mean on the 1-10 scale (wvs_score={score:+.3f})")
    return out


_MISSING = re.compile(r"don.?t know|no answer|missing|not asked|refused|not applicable|dk/|^other", re.I)


def _goqa_candidates(questions_path: Path, codebook_path: Path, wvs_ids: set[str]) -> dict[str, tuple]:
    texts: dict[str, list[str]] = defaultdict(list)
    for q in json.loads(Path(questions_path).read_text(encoding="utf-8")):
        if q["Q_id"] in wvs_ids:
            texts[q["Q_id"]].append(q["question"])
    codebook = json.loads(Path(codebook_path).read_text(encoding="utf-8"))
    out = {}
    for qid in wvs_ids:
        entry = codebook.get(qid) or {}
        choices = {int(c): lab for c, lab in entry.get("choices", {}).items() if int(c) >= 0}
        codes = sorted(choices)
        label = entry.get("question", "")
        # Codebook labels read "Topic: item"; the item alone matches GOQA's last line best.
        cands = texts.get(qid, []) + ([label, label.split(":", 1)[-1]] if label else [])
        if cands and codes:
            out[qid] = (cands, codes, [choices[c] for c in codes])
    return out


def _label_fit(labels: list[str], code_labels: list[str]) -> tuple[float, bool]:
    """How well a row's option labels fit the WVS code labels (0-100), and whether they run in reverse order."""
    from rapidfuzz import fuzz

    def fit(a: list[str], b: list[str]) -> float:
        return sum(fuzz.token_sort_ratio(x.lower(), y.lower()) for x, y in zip(a, b)) / max(len(a), 1)

    same, rev = fit(labels, code_labels), fit(labels, code_labels[::-1])
    return max(same, rev), rev > same


# Found by the audit (docs/profiles.md): a row whose answer labels share less than this with the WVS
# scale is another question that happens to share words with the item, e.g. the Pew item "It is
# (not) necessary to believe in God to be moral" matched Q165 "Believe in: God" through the one
# word "God", and "Election officials are fair" (how often ...) matched Q76 "Confidence: Elections".
MIN_LABEL_FIT = 50.0


def goqa_distributions(path: Path, probes: Iterable[Probe], questions_path: Path, codebook_path: Path,
                       min_score: float = 85.0, min_margin: float = 5.0, check_labels: bool = True
                       ) -> dict[tuple[str, str], dict[int, float]]:
    """GlobalOpinionQA rows matched to WVS ids by question text: ``{(ISO3, WVS id): {code: share}}``.

    ``check_labels=False`` is the matcher before the audit (text only), kept to report the audit's effect.
    """
    return dict(_goqa_distributions(str(path), tuple(_with_codes(probes)), str(questions_path), str(codebook_path),
                                    min_score, min_margin, check_labels))


@lru_cache(maxsize=4)  # the audit reads the same rows as the build: match them once
def _goqa_distributions(path: str, probes: tuple[Probe, ...], questions_path: str, codebook_path: str,
                        min_score: float, min_margin: float, check_labels: bool
                        ) -> dict[tuple[str, str], dict[int, float]]:
    from rapidfuzz import fuzz

    candidates = _goqa_candidates(Path(questions_path), Path(codebook_path), {p.wvs_id for p in probes})
    best: dict[tuple[str, str], tuple[float, dict[int, float]]] = {}
    for row in json.loads(Path(path).read_text(encoding="utf-8")):
        if "non-national" in row["country"].lower():
            continue
        try:
            alpha3 = resolve_country(row["country"]).alpha3
        except UnknownCountryError:
            continue
        item = row["question"].strip().split("\n\n")[-1].strip()
        kept = [(o, d) for o, d in zip(row["options"], row["distribution"]) if not _MISSING.search(str(o))]
        scored = []
        for qid, (cands, codes, code_labels) in candidates.items():
            if len(codes) != len(kept):
                continue
            s = max(max(fuzz.token_set_ratio(item, c), fuzz.token_set_ratio(row["question"], c)) for c in cands)
            scored.append((s, qid, codes, code_labels))
        if not scored:
            continue
        scored.sort(key=lambda t: -t[0])
        s, qid, codes, code_labels = scored[0]
        fit, reverse = _label_fit([str(o) for o, _ in kept], code_labels)
        if reverse:
            codes = codes[::-1]
        if s < min_score or (len(scored) > 1 and s - scored[1][0] < min_margin):
            continue
        if check_labels and fit < MIN_LABEL_FIT:
            continue
        key = (alpha3, qid)
        if key not in best or s > best[key][0]:
            best[key] = (s, {c: d for c, (_, d) in zip(codes, kept)})
    return {key: dist for key, (_, dist) in best.items()}


def _l1(a: Mapping[int, float], b: Mapping[int, float]) -> float:
    ta, tb = sum(a.values()) or 1.0, sum(b.values()) or 1.0
    return sum(abs(a.get(c, 0.0) / ta - b.get(c, 0.0) / tb) for c in set(a) | set(b))


def mislabelled_countries(rows: Mapping[tuple[str, str], Mapping[int, float]],
                          published: Mapping[str, Mapping[str, Mapping[int, float]]],
                          far: float = 0.1, min_rows: int = 3) -> dict[str, str | None]:
    """Countries whose matched rows are not their own figures: ``{ISO3: country they sit nearest, or None}``.

    The audit found the GlobalOpinionQA rows labelled Argentina holding Andorra's published shares
    to the third decimal, Armenia's holding Bangladesh's, Australia's holding Argentina's, and
    Andorra's matching no published country. A country is flagged when more than half of its rows
    that have published figures of their own differ from them by more than ``far`` (L1 over codes;
    an honest row differs by sampling and rounding, well under 0.1). Its rows are then dropped
    altogether, also where there is nothing to compare, since the label, not the question, is wrong.
    """
    by_country: dict[str, list[tuple[str, Mapping[int, float]]]] = defaultdict(list)
    for (alpha3, qid), dist in rows.items():
        if qid in published.get(alpha3, {}):
            by_country[alpha3].append((qid, dist))
    out: dict[str, str | None] = {}
    for alpha3, items in sorted(by_country.items()):
        off = [(qid, dist) for qid, dist in items if _l1(dist, published[alpha3][qid]) > far]
        if len(items) < min_rows or len(off) * 2 <= len(items):
            continue
        nearest = []
        for qid, dist in off:
            d, c = min(((_l1(dist, qs[qid]), c) for c, qs in published.items() if c != alpha3 and qid in qs),
                       default=(9.0, None))
            if d <= far / 2:
                nearest.append(c)
        out[alpha3] = max(set(nearest), key=nearest.count) if nearest else None
    return out


def published_distributions(paths: Iterable[Path | Mapping]) -> dict[str, dict[str, dict[int, float]]]:
    """Published code shares by country and question, first file (or read table) first (renormalised by :func:`_l1`)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for path in paths:
        for country, questions in _read_shares(path).items():
            alpha3 = resolve_country(country).alpha3
            for qid, dist in questions.items():
                out.setdefault(alpha3, {}).setdefault(qid, {int(float(k)): float(v) for k, v in dist.items()})
    return out


def from_goqa(path: Path, probes: Iterable[Probe], questions_path: Path, codebook_path: Path,
              published: Mapping[str, Mapping[str, Mapping[int, float]]] | None = None,
              checks: bool = True) -> Answers:
    """GlobalOpinionQA rows (no WVS ids) matched to WVS ids by question text; confident matches only.

    With ``checks`` (the default) the audit's fixes apply: answer labels must fit the WVS scale, and
    given ``published`` figures, countries whose rows carry another country's figures are dropped.
    """
    probes = _with_codes(probes)
    rows = goqa_distributions(path, probes, questions_path, codebook_path, check_labels=checks)
    if checks and published:
        bad = mislabelled_countries(rows, published)
        rows = {key: d for key, d in rows.items() if key[0] not in bad}
    out: Answers = {}
    for (alpha3, qid), dist in rows.items():
        for p in probes:
            if p.wvs_id == qid and (a := collapse(p, dist, "goqa")):
                out.setdefault(alpha3, {})[p.id] = a
    return out


def from_wvs_csv(path: Path, probes: Iterable[Probe], country_column: str = "B_COUNTRY_ALPHA",
                 weight_column: str = "W_WEIGHT") -> Answers:
    """Weighted shares from the WVS Wave 7 respondent file; negative codes are missing."""
    probes = _with_codes(probes)
    sums: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = set(reader.fieldnames or [])
        for col in (country_column, weight_column):
            if col not in header:
                raise InputError(f"{path}: column {col!r} is missing; expected the WVS Wave 7 layout "
                                     f"({country_column}, {weight_column}, Q1..Q259)", param="wvs")
        columns = sorted({p.wvs_id for p in probes} & header)
        if not columns:
            raise InputError(f"{path}: no question columns (Q1..Q259) found", param="wvs")
        for line, row in enumerate(reader, start=2):
            try:
                w = float(row[weight_column] or 1.0)
            except ValueError:
                raise InputError(f"{path}:{line}: {weight_column} is not a number: {row[weight_column]!r}",
                                     param="wvs") from None
            country = row[country_column].strip()
            for col in columns:
                value = (row[col] or "").strip()
                if not value:
                    continue
                try:
                    code = int(float(value))
                except ValueError:
                    raise InputError(f"{path}:{line}: {col} is not an answer code: {value!r}", param="wvs") from None
                if code >= 0:
                    sums[country][col][code] += w
    out: Answers = {}
    for country, questions in sums.items():
        alpha3 = resolve_country(country).alpha3
        for p in probes:
            counts = questions.get(p.wvs_id)
            if not counts:
                continue
            total = sum(counts.values())
            if (a := collapse(p, {c: v / total for c, v in counts.items()}, "wvs", n=total)):
                out.setdefault(alpha3, {})[p.id] = a
    return out


def codebook_scales(codebook_path: Path, wvs_ids: Iterable[str]) -> dict[str, set[int]]:
    """WVS id -> its valid answer codes (the non-negative codes of the codebook), for the given ids."""
    codebook = json.loads(Path(codebook_path).read_text(encoding="utf-8"))
    return {q: {int(c) for c in codebook[q].get("choices", {}) if c.lstrip("-").isdigit() and int(c) >= 0}
            for q in set(wvs_ids) if q in codebook}


def respondent_shares(data_dir: Path, weighting: str = DEFAULT_WEIGHTING) -> RespondentShares | None:
    """``wvs7-shares-12`` of a data folder in the chosen weighting, or None when the folder has none."""
    path = Path(data_dir) / RESPONDENT_SHARES_FILE
    return read_respondent_shares(path, weighting) if path.is_file() else None


def published_sets(data_dir: Path, weighting: str = DEFAULT_WEIGHTING) -> list[Path | Mapping]:
    """The published share tables of a data folder, in priority order (for :func:`published_distributions`)."""
    d = Path(data_dir)
    out: list[Path | Mapping] = [d / SHARES_FILES["wvs7-shares"]]
    if (rs := respondent_shares(d, weighting)) is not None:
        out.append(rs.flat())
    out.append(d / SHARES_FILES["wvs7-shares-46"])
    return [x for x in out if isinstance(x, Mapping) or x.is_file()]


def drop_not_asked(parts: dict[str, Answers], asked: Mapping[str, set[str]], probes: Iterable[Probe],
                   below: str) -> list[tuple[str, str, str]]:
    """Remove answers to questions a country did not ask, from every source ranked below ``below``.

    ``asked`` maps a country to the questions its respondents were asked. A goqa match or a mean for
    a question the respondent file says was never put there answers something else; the probe stays
    unanswered (answers are never taken from another country either). Returns (source, country, probe).
    """
    rank = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    wvs_id = {p.id: p.wvs_id for p in probes}
    dropped = []
    for name, answers in parts.items():
        if rank.get(name, 99) <= rank[below]:
            continue
        for country, by_probe in answers.items():
            if country not in asked:
                continue
            for pid in [pid for pid in by_probe if wvs_id.get(pid, pid) not in asked[country]]:
                del by_probe[pid]
                dropped.append((name, country, pid))
    return dropped


def merge(*sources: Answers) -> dict[str, CountryAnswers]:
    """Per country and probe, keep the answer from the highest-priority source."""
    rank = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    merged: dict[str, dict[str, CountryAnswer]] = defaultdict(dict)
    for answers in sources:
        for alpha3, by_probe in answers.items():
            for pid, a in by_probe.items():
                old = merged[alpha3].get(pid)
                if old is None or rank.get(a.source, 99) < rank.get(old.source, 99):
                    merged[alpha3][pid] = a
    return {a3: CountryAnswers(country=a3, name=resolve_country(a3).name, answers=dict(v))
            for a3, v in sorted(merged.items())}


def build_sources(probes: list[Probe], data_dir: Path | None = None, wvs_csv: Path | None = None,
                  checks: bool = True, weighting: str = DEFAULT_WEIGHTING) -> dict[str, Answers]:
    """Each given source's answers, by source name (merge them with :func:`merge`).

    ``data_dir`` is in the layout of the project's shared data; ``wvs7-shares-46/`` and
    ``wvs7-shares-12/`` in it are optional, so an older copy still builds. ``weighting`` picks the
    shares of ``wvs7-shares-12`` (``unweighted`` or ``weighted``). ``checks=False`` builds the
    weaker sources as they were before the audit (for :func:`middleware.data.audit.audit_build`).
    """
    parts: dict[str, Answers] = {}
    if wvs_csv is not None:
        parts["wvs"] = from_wvs_csv(wvs_csv, probes)
    if data_dir is not None:
        d = Path(data_dir)
        needed = [d / SHARES_FILES["wvs7-shares"], d / "wvs7-ethics-means/wvs_w7_mcm.csv",
                  d / "goqa-sample/eval.json", d / "wvs7-shares/wvs_questions.json", d / "wvs7-meta/codebook.json"]
        for f in needed:
            if not f.is_file():
                raise InputError(f"{f} is missing: --data-dir must hold wvs7-shares/, wvs7-ethics-means/, "
                                     "goqa-sample/ and wvs7-meta/ (wvs7-shares-46/ is optional)", param="data_dir")
        parts["wvs7-shares"] = from_shares(needed[0], probes, "wvs7-shares")
        rs = respondent_shares(d, weighting)
        if rs is not None:
            # a country whose codes fall outside a question's scale was asked it differently: no collapse
            skip = [(c, q) for c, q, _ in off_scale(rs, codebook_scales(needed[4], {p.wvs_id for p in probes}))]
            parts[source_name(weighting)] = from_respondent_shares(rs, probes, skip=skip)
        if (d / SHARES_FILES["wvs7-shares-46"]).is_file():
            parts["wvs7-shares-46"] = from_shares(d / SHARES_FILES["wvs7-shares-46"], probes, "wvs7-shares-46")
        published = published_distributions(published_sets(d, weighting))
        parts["goqa"] = from_goqa(needed[2], probes, needed[3], needed[4], published=published, checks=checks)
        parts["wvs7-means"] = from_means(needed[1], probes, checks=checks)
        if rs is not None:
            drop_not_asked(parts, {c: rs.asked(c) for c in rs.shares}, probes, below=source_name(weighting))
    if not parts:
        raise InputError("nothing to build from: give --data-dir DIR and/or --wvs FILE.csv", param="data_dir")
    return parts


def build_all(probes: list[Probe], data_dir: Path | None = None, wvs_csv: Path | None = None,
              weighting: str = DEFAULT_WEIGHTING) -> dict[str, CountryAnswers]:
    """Every source that is given, merged by priority (see :func:`build_sources`)."""
    return merge(*build_sources(probes, data_dir, wvs_csv, weighting=weighting).values())
