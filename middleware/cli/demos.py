"""``selfalign demos``: preview the demonstrations a message would get."""

from __future__ import annotations

import json
from typing import Optional

import typer

from .align_flags import align_flags

__all__ = ["register", "DEFAULT_COUNTRY"]

DEFAULT_COUNTRY = "us"
"""The country when neither --country nor --profile is given."""


def register(app: typer.Typer) -> None:
    @app.command()
    @align_flags(defaults={"country": DEFAULT_COUNTRY},
                 help={"country": "ISO code or name, e.g. ro, ROU, Romania.",
                       "language": "Demonstration language, or auto (default: each message's; others get English).",
                       "profile": "A user profile file (YAML or JSON); replaces the country."})
    def demos(
        text: str = typer.Argument(..., help="The user message to find demonstrations for."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the random strategies."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (the demonstrations and the reproducibility "
                                     "signature) instead of a table."),
        options=None,
    ) -> None:
        """Show the WVS demonstrations selfalign would inject for TEXT."""
        from ..retrieval.cache import aligner_for
        from ..retrieval.strategies import get_strategy, scorer_of
        from ..retrieval.signature import signature
        from . import fail

        aligner = aligner_for(options, seed=seed)
        if aligner is None:
            raise fail(f"--country {options.country} turns alignment off: there is nothing to show")
        if options.profile is None:
            from ..data.coverage import coverage_warning_once

            if (warning := coverage_warning_once(aligner.country)):
                typer.echo(f"selfalign: warning: {warning}", err=True)
        found = aligner.select(text)
        if as_json:
            typer.echo(json.dumps({"signature": signature(aligner, found), "relevance": found.relevance.to_dict(),
                                   "demonstrations": [d.to_dict() for d in found]}, ensure_ascii=False, indent=2))
            return
        if not found.relevance.inject:
            typer.echo(f"No demonstrations: {found.relevance.summary()}; --min-relevance 0 shows them anyway.")
            return
        from rich.console import Console
        from rich.table import Table

        lang = found[0].language if found else aligner.language
        table = Table(title=f"{aligner.profile.subject or aligner.profile.name}, language {lang} — strategy "
                            f"{options.strategy}, k={options.k}")
        table.add_column("#", justify="right")
        scorer = scorer_of(get_strategy(options.strategy))
        table.add_column({"chrf": "chrF++", "semantic": "cosine x100", "hybrid": "RRF x1000"}[scorer], justify="right")
        table.add_column("probe")
        table.add_column("category")
        table.add_column("demonstration")
        for i, d in enumerate(found, 1):
            table.add_row(str(i), f"{d.score:.1f}", d.probe_id or "", d.category, d.text)
        console = Console()
        console.print(table)
        console.print(signature(aligner, found), style="dim", soft_wrap=True, highlight=False)
