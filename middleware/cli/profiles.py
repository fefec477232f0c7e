"""``selfalign profiles ...``: list, build and import value profiles."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

profiles_app = typer.Typer(no_args_is_help=True, help="List, build and import value profiles.")

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.add_typer(profiles_app, name="profiles")


@profiles_app.command("list")
def list_(
    all_countries: bool = typer.Option(False, "--all", help="Every country with answers, not only the paper's 14."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per country: how many probes have answers, from which source, and in which WVS category."""
    import json

    from ..data.answers import available_countries
    from ..data.countries import PAPER_PAIRS
    from ..data.coverage import MIN_COVERAGE, coverage
    from ..data.probes import available_languages

    langs = {a3: l for l, a3 in PAPER_PAIRS.items()}
    codes = available_countries() if all_countries else list(PAPER_PAIRS.values())
    rows = [{**coverage(a3), "language": langs.get(a3, "en")} for a3 in codes]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    n_probes = rows[0]["probes"] if rows else 0
    table = Table(title=f"Country answers ({n_probes} probes; languages: {', '.join(available_languages())}; "
                        f"[red]red[/red]: fewer than {MIN_COVERAGE})")
    for col, just in [("country", "left"), ("name", "left"), ("lang", "left"), ("answered", "right"),
                      ("sources", "left")]:
        table.add_column(col, justify=just)
    for r in rows:
        src = ", ".join(f"{k} {v}" for k, v in r["sources"].items()) or "-"
        answered = f"{r['answered']}/{r['probes']}"
        table.add_row(r["country"], r["name"], r["language"],
                      f"[red]{answered}[/red]" if r["answered"] < MIN_COVERAGE else answered, src)
    console = Console()
    console.print(table)
    # Categories as numbered columns, with a legend: the names are too long for headers.
    cats = list(rows[0]["categories"]) if rows else []
    by_cat = Table(title="Answered probes per WVS category")
    by_cat.add_column("country")
    for i, _ in enumerate(cats, 1):
        by_cat.add_column(f"C{i}", justify="right")
    by_cat.add_row("(probes)", *(str(rows[0]["categories"][c]["probes"]) for c in cats))
    for r in rows:
        by_cat.add_row(r["country"], *(str(r["categories"][c]["answered"]) for c in cats))
    console.print(by_cat)
    for i, c in enumerate(cats, 1):
        console.print(f"  C{i}  {c}")


@profiles_app.command("build")
def build(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with wvs7-shares/, wvs7-ethics-means/, "
                                            "goqa-sample/, wvs7-meta/ (the layout of the project's shared data)."),
    wvs: Optional[Path] = typer.Option(None, "--wvs", help="WVS Wave 7 respondent file (CSV with B_COUNTRY_ALPHA, "
                                       "W_WEIGHT, Q1..Q259)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write <ISO3>.json (default: the built-in answers)."),
    weighting: str = typer.Option("unweighted", "--weighting", help="Shares of wvs7-shares-12/ to use: unweighted "
                                  "(plain counts, like the other share files) or weighted (W_WEIGHT); see "
                                  "docs/profiles.md."),
) -> None:
    """Build country answers from survey figures (shares, majorities, provenance), with a source audit."""
    from ..data.answers import answers_dir
    from ..data.build import build_sources, merge
    from ..data.probes import load_probes
    from ..data.respondent_shares import check_weighting
    from . import fail

    for label, path in (("--wvs", wvs), ("--data-dir", data_dir)):
        if path is not None and not path.exists():
            raise fail(f"{label} {path}: no such file or folder")
    check_weighting(weighting)  # before any data is read (the folder may lack wvs7-shares-12/)
    probes = load_probes("en")
    sources = build_sources(probes, data_dir=data_dir, wvs_csv=wvs, weighting=weighting)
    result = merge(*sources.values())
    target = out or answers_dir()
    for answers in result.values():
        answers.save(target)
    # A country the sources no longer answer must not keep an old file: the folder is the build's output.
    stale = sorted(p for p in target.glob("*.json") if re.fullmatch(r"[A-Z]{3}", p.stem) and p.stem not in result)
    for p in stale:
        p.unlink()
    total = sum(len(a.answers) for a in result.values())
    typer.echo(f"wrote answers for {len(result)} countries ({total} probe answers) to {target}"
               + (f"; removed {len(stale)} without answers now: {', '.join(p.stem for p in stale)}" if stale else ""))
    if data_dir is None:
        return
    _report_published(data_dir, probes, sources, weighting)
    from ..data.audit import audit_build

    report = audit_build(probes, data_dir, sources=sources, weighting=weighting)
    for name in report.after:
        before, after = report.before[name], report.after[name]
        causes = "; ".join(f"{k} {v}" for k, v in before.causes().items()) or "none"
        left = "; ".join(f"{k} {v}" for k, v in after.causes().items()) or "none"
        typer.echo(f"audit {name} vs published shares: before fixes {before.agree}/{before.pairs} agree "
                   f"({before.rate:.1%}; disagreements: {causes}); after {after.agree}/{after.pairs} "
                   f"({after.rate:.1%}; left: {left})")
    if report.mislabelled:
        typer.echo("goqa rows dropped, labelled with the wrong country in the source: "
                   + ", ".join(report.mislabelled))


def _report_published(data_dir: Path, probes: list, sources: dict, weighting: str) -> None:
    """How the published share files compare where they overlap, and what wvs7-shares-12 changes."""
    from ..data.answers import PUBLISHED_SOURCES
    from ..data.audit import WEAK_SOURCES, agreement_by_country
    from ..data.build import SHARES_FILES, compare_shares, merge, respondent_shares
    from ..data.respondent_shares import RESPONDENT_SHARES_FILE, source_name, weighting_report

    def overlap(name_a: str, a, name_b: str, b, winner: str) -> None:
        n, worst, over = compare_shares(a, b)
        by_country: dict[str, int] = {}
        for c, _, _ in over:
            by_country[c] = by_country.get(c, 0) + 1
        typer.echo(f"published shares: {name_a} and {name_b} both hold {n} country-questions; "
                   f"{n - len(over)} agree within 1e-4 after renormalising"
                   + (f"; differ: {', '.join(f'{c} {k}' for c, k in sorted(by_country.items()))} "
                      f"(largest {worst:.3f})" if over else "") + f"; {winner} wins")

    cspa, s46 = (data_dir / SHARES_FILES[k] for k in ("wvs7-shares", "wvs7-shares-46"))
    if s46.is_file():
        overlap("wvs7-shares", cspa, "wvs7-shares-46", s46, "wvs7-shares")
    rs = respondent_shares(data_dir, "unweighted")
    if rs is None:
        return
    if s46.is_file():
        overlap("wvs7-shares-12 (unweighted)", rs.flat(), "wvs7-shares-46", s46, "wvs7-shares-12")
    mine = source_name(weighting)
    others = merge(*(v for k, v in sources.items() if k != mine))
    w = weighting_report(data_dir / RESPONDENT_SHARES_FILE, probes, {c: a.answers for c, a in others.items()})
    typer.echo(f"wvs7-shares-12: weighted and unweighted majorities differ on {len(w['weighted_vs_unweighted'])} "
               f"of {w['both']} country-probes ({', '.join(f'{c} {p}' for c, p, *_ in w['weighted_vs_unweighted'])}"
               f"); of {w['shared_with_others']} the other sources also answer, unweighted differs on "
               f"{len(w['unweighted_vs_others'])}, weighted on {len(w['weighted_vs_others'])}; built: {weighting}")
    not_asked = {c: [p.id for p in probes if p.codes and p.wvs_id not in rs.asked(c)] for c in sorted(rs.shares)}
    typer.echo("not asked there, so left unanswered: "
               + ("; ".join(f"{c} {' '.join(ids)}" for c, ids in not_asked.items() if ids) or "none"))
    weak = {}
    for name in WEAK_SOURCES:
        for c, by_probe in sources.get(name, {}).items():
            for pid, a in by_probe.items():
                weak.setdefault(c, {}).setdefault(pid, a)
    agree = agreement_by_country(weak, sources.get(mine, {}))
    typer.echo(f"goqa and wvs7-means answers vs {mine}: "
               + ", ".join(f"{c} {ok}/{n}" for c, (n, ok, _) in agree.items()) + f"; {mine} wins"
               + f" (published sources, first wins: {', '.join(s for s in PUBLISHED_SOURCES if s in sources)})")


@profiles_app.command("import-arora")
def import_arora_cmd(
    directory: Path = typer.Argument(..., help="Folder with the Arora et al. <language>.csv probe files."),
    out: Path = typer.Option(Path("arora-probes"), "--out", help="Where to write the converted probe files."),
) -> None:
    """Convert the Arora et al. (2023) probe files to selfalign probes (bad rows are reported and skipped)."""
    from ..data.arora import import_arora
    from . import fail

    if not directory.is_dir():
        raise fail(f"{directory}: not a folder")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Arora et al. probes -> {out}")
    for col in ("language", "kept", "skipped", "skipped ids (reason)"):
        table.add_column(col)
    for r in import_arora(directory, out):
        reasons = {}
        for pid, why in r.skipped:
            reasons.setdefault(why, []).append(pid)
        table.add_row(r.language, str(r.kept), str(len(r.skipped)),
                      "; ".join(f"{why}: {' '.join(ids)}" for why, ids in reasons.items()))
    Console().print(table)


@profiles_app.command("probes")
def probes_cmd(
    language: str = typer.Option("en", "--language", "-l"),
    country: Optional[str] = typer.Option(None, "--country", "-c", help="Also show this country's majority answers."),
) -> None:
    """Show the built-in probes of a language (and a country's answers)."""
    from rich.console import Console
    from rich.table import Table

    from ..data.answers import answer_for, load_answers
    from ..data.probes import load_probes

    answers = load_answers(country) if country else None
    table = Table(title=f"Probes ({language})" + (f" with answers of {answers.name}" if answers else ""))
    for col in ("id", "category", "statement", "options") + (("majority", "shares", "source") if answers else ()):
        table.add_column(col)
    for p in load_probes(language):
        row = [p.id, p.category, p.question, " / ".join(p.options)]
        if answers:
            a = answer_for(p, answers)
            row += ([p.options[a.majority], "-" if a.shares is None else f"{a.shares[0]:.2f}/{a.shares[1]:.2f}",
                     a.source] if a else ["-", "-", "-"])
        table.add_row(*row)
    Console().print(table)
