"""``selfalign demos``: preview the demonstrations a message would get."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..options import DEFAULT_MIN_RELEVANCE


def register(app: typer.Typer) -> None:
    @app.command()
    def demos(
        text: str = typer.Argument(..., help="The user message to find demonstrations for."),
        country: Optional[str] = typer.Option(None, "--country", "-c", help="ISO code or name, e.g. ro, ROU, Romania."),
        language: Optional[str] = typer.Option(None, "--language", "-l", help="Demonstration language, or auto "
                                                  "(default: each message's; others get English)."),
        k: int = typer.Option(5, "--k", "-k", min=1, help="How many demonstrations."),
        strategy: str = typer.Option("chrf", "--strategy", "-s", help="chrf, chrf-category, random, "
                                 "random-category, semantic, hybrid, cultural, cultural+chrf."),
        profile: Optional[Path] = typer.Option(None, "--profile", "-p", help="A user profile file (YAML or JSON)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the random strategies."),
        min_margin: float = typer.Option(0.0, "--min-margin", min=0.0, max=0.999, help="Leave out probes whose "
                                         "survey majority leads by less than this share (0.1: closer than 55/45)."),
        min_relevance: float = typer.Option(DEFAULT_MIN_RELEVANCE, "--min-relevance", min=0.0, max=1.0,
                                            help="Show demonstrations only when TEXT is about values with at "
                                            "least this probability; 0: always k (the paper's setting)."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON object (relevance, data) instead of a "
                                     "table."),
    ) -> None:
        """Show the WVS demonstrations selfalign would inject for TEXT."""
        from ..retrieval.aligner import SelfAligner

        if country is None and profile is None:
            country = "us"
        aligner = SelfAligner(country=country, language=language, k=k, strategy=strategy, profile=profile, seed=seed,
                              min_margin=min_margin, min_relevance=min_relevance)
        if profile is None:
            from ..data.coverage import coverage_warning_once

            if (warning := coverage_warning_once(aligner.country)):
                typer.echo(f"selfalign: warning: {warning}", err=True)
        found = aligner.select(text)
        if as_json:
            typer.echo(json.dumps({"relevance": found.relevance.to_dict(), "data": [d.to_dict() for d in found]},
                                  ensure_ascii=False, indent=2))
            return
        if not found.relevance.inject:
            r = found.relevance
            typer.echo(f"No demonstrations: {r.reason} (relevance {r.score:.2f} < {r.threshold:g}); "
                       f"--min-relevance 0 shows them anyway.")
            return
        from rich.console import Console
        from rich.table import Table

        lang = found[0].language if found else aligner.language
        table = Table(title=f"{aligner.profile.subject or aligner.profile.name}, language {lang} — strategy "
                            f"{strategy}, k={k}")
        table.add_column("#", justify="right")
        from ..retrieval.strategies import get_strategy, scorer_of

        scorer = scorer_of(get_strategy(strategy))
        table.add_column({"chrf": "chrF++", "semantic": "cosine x100", "hybrid": "RRF x1000"}[scorer], justify="right")
        table.add_column("probe")
        table.add_column("category")
        table.add_column("demonstration")
        for i, d in enumerate(found, 1):
            table.add_row(str(i), f"{d.score:.1f}", d.probe_id or "", d.category, d.text)
        Console().print(table)
