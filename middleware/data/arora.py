"""Read the multilingual WVS probes of Arora, Kaffee & Augenstein (2023) into :class:`Probe` objects.

Their files are tab-separated (despite ``.csv``): row index, WVS question id (``28``,
``106a``), template with ``[MASK]``, option 1, option 2. Rows with one option or no
``[MASK]`` cannot be used as two-option cloze probes: they are reported and skipped.

Their option order is not always ours, so each question's code mapping is set here:
by default the built-in probe's, mirrored for the questions where their first option is
the other pole (fact checked per question against the WVS scale).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .._files import write_atomic
from .countries import resolve_language
from ..errors import ProfileError
from .probes import BLANK, Probe, master_codes

__all__ = ["load_arora", "import_arora", "AroraReport"]

# Questions whose first option is the high end of the WVS code scale (ours starts at the low end).
_MIRRORED = {"Q90", "Q112", "Q113", "Q114", "Q115", "Q116", "Q117", "Q118", "Q120", "Q121"}
# Questions where their two options split the scale differently from ours.
_OWN_CODES = {
    "Q42": ((1,), (2,)),  # radically vs gradually changed
    **{f"Q{n}": ((2,), (1,)) for n in range(94, 106)},  # active vs inactive member
    "Q130a": ((1,), (2, 3, 4)), "Q130b": ((2,), (1, 3, 4)), "Q130c": ((3,), (1, 2, 4)), "Q130d": ((4,), (1, 2, 3)),
}


@dataclass
class AroraReport:
    language: str
    kept: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)


def _codes(pid: str):
    if pid in _OWN_CODES:
        return _OWN_CODES[pid]
    ours = master_codes().get(pid)
    if ours is None:
        return None
    return ours[::-1] if pid in _MIRRORED else ours


def load_arora(path: str | Path, language: str | None = None) -> tuple[list[Probe], AroraReport]:
    path = Path(path)
    lang = resolve_language(language or path.stem)
    from .probes import load_probes

    categories = {p.wvs_id: p.category for p in load_probes("en")}
    report = AroraReport(lang)
    probes: list[Probe] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror or e}") from None
    for n, row in enumerate(rows[1:], start=2):
        if len(row) < 4:
            raise ProfileError(f"{path}:{n}: expected tab-separated columns index, id, template, option 1, option 2")
        qid = f"Q{row[1].strip()}"
        template, options = row[2].strip(), [o.strip() for o in row[3:5]]
        if len(options) < 2 or not all(options):
            report.skipped.append((qid, "only one option"))
            continue
        if template.count("[MASK]") != 1:
            report.skipped.append((qid, "no [MASK] in the template"))
            continue
        wvs_id = qid.rstrip("abcd") if qid[-1] in "abcd" else qid
        probes.append(Probe(id=qid, wvs_id=wvs_id, category=categories.get(wvs_id, ""), language=lang,
                            template=template.replace(BLANK, "-").replace("[MASK]", BLANK),
                            options=(options[0], options[1]), codes=_codes(qid)))
        report.kept += 1
    return probes, report


def import_arora(directory: str | Path, out: str | Path) -> list[AroraReport]:
    """Convert every ``<lang>.csv`` in ``directory`` into selfalign probe files under ``out``."""
    directory, out = Path(directory), Path(out)
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise ProfileError(f"{directory}: no <language>.csv probe files found")
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for f in files:
        probes, report = load_arora(f)
        doc = {"language": report.language, "source": "Arora, Kaffee & Augenstein (2023), GPL-3.0",
               "probes": [{"id": p.id, "wvs_id": p.wvs_id, "category": p.category, "template": p.template,
                           "options": list(p.options), **({"codes": [list(c) for c in p.codes]} if p.codes else {})}
                          for p in probes]}
        write_atomic(out / f"{report.language}.yaml", yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
        reports.append(report)
    return reports
