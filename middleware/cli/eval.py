"""``selfalign eval``: reproduce the paper's probe experiments on any model (see middleware.eval)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .align_flags import align_flags

__all__ = ["register"]

# The evaluator chooses these per language/country pair (--pairs) and runs several strategies and formats at once;
# every other alignment option is a generated flag passed to EvalConfig by name.
_OWN = ("country", "language", "profile", "strategy", "format")


def _eval_options(options, config_type: type) -> dict:
    """The alignment options the evaluator takes (its EvalConfig fields of the same names). An option it does
    not take yet may not be set away from its default: that would be silently ignored."""
    import dataclasses

    from ..errors import InputError
    from ..options import AlignOptions

    taken = {f.name for f in dataclasses.fields(config_type)}
    values = {name: value for name, value in options.options().items() if name not in _OWN}
    for name, value in values.items():
        if name not in taken and value != getattr(AlignOptions(), name):
            raise InputError(f"--{name.replace('_', '-')} is not supported by the evaluator yet", param=name)
    return {name: value for name, value in values.items() if name in taken}


def register(app: typer.Typer) -> None:
    from ..models.registry import EVAL_MODEL, is_local
    from ..options import DEFAULT_STRATEGY
    from ..retrieval.strategies import strategy_names

    @app.command("eval")
    @align_flags(exclude=_OWN, help={"k": "Demonstrations per prompt."})
    def eval_(
        model: str = typer.Option(EVAL_MODEL, "--model", "-m", help="Any litellm model (gpt-4o-mini, "
                                  "hosted_vllm/NAME, ...) or local/NAME for an in-process model."),
        language: Optional[str] = typer.Option(None, "--language", "-l", help="Probe language (default: the "
                                               "country's paper language)."),
        country: Optional[str] = typer.Option(None, "--country", "-c", help="Country whose majority answers are "
                                              "the target (default: the language's paper country)."),
        pairs: Optional[str] = typer.Option(None, "--pairs", help="'paper' (every paper pair with probes and "
                                            "answers) or LANG-COUNTRY items, e.g. en-us,de-de."),
        strategy: str = typer.Option(DEFAULT_STRATEGY, "--strategy", "-s", help=f"{', '.join(strategy_names())}, "
                                     "a comma-separated list, or all (the paper's four)."),
        samples: int = typer.Option(10, "--samples", "-n", help="Responses per prompt in sample mode."),
        mode: Optional[str] = typer.Option(None, "--mode", help="sample (parse n sampled answers) or exact (option "
                                           "log-probabilities). Default: exact for local/ models, else sample."),
        probes: str = typer.Option("builtin", "--probes", help="builtin, or arora:DIR with Arora et al. <lang>.csv "
                                   "files."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N test probes of each pair."),
        sample: Optional[int] = typer.Option(None, "--sample", help="A random N test probes of each pair, seeded "
                                             "by --seed (every category, the same N in every run; a larger N "
                                             "holds every smaller one, so the cache serves what they share)."),
        shuffle_orders: bool = typer.Option(False, "--shuffle-orders", help="Also run reshuffled demonstration "
                                            "orders (robustness)."),
        orders: int = typer.Option(3, "--orders", help="How many reshuffles with --shuffle-orders."),
        seed: int = typer.Option(0, "--seed", help="Seed for option order, random strategies, reshuffles, "
                                 "sampling and the bootstrap."),
        concurrency: int = typer.Option(8, "--concurrency", help="Concurrent requests to an API model."),
        api_base: Optional[str] = typer.Option(None, "--api-base", help="Base URL of an OpenAI-compatible server, "
                                               "e.g. http://host:8000/v1 for vLLM."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json, probes.csv, figures and "
                                           "report.md here."),
        cache: Optional[Path] = typer.Option(None, "--cache", help="SQLite response cache (default: the user "
                                             "cache dir)."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the response cache."),
        tolerance: Optional[float] = typer.Option(None, "--tolerance", help="Change in p(majority) that still "
                                                  "counts as unchanged (default 0.05)."),
        misaligned_below: Optional[float] = typer.Option(None, "--misaligned-below", help="Zero-shot p(majority) "
                                                         "below which a probe is misaligned (default 0.5 exact; "
                                                         "sample: below 100%)."),
        max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Tokens per sampled answer (default: "
                                                 "longest option + 4 locally, 32 for API models)."),
        injection: str = typer.Option("paper", "--injection", help="paper (demonstrations as solved items in the "
                                      "user prompt, the paper's) or system (the product's own request: the probe "
                                      "as the user message through the aligner, as serve and chat send it)."),
        format_: str = typer.Option("bullets", "--format", help="With --injection system: how the statements are "
                                    "written (bullets, bullets-native, survey, shares, turns, items), a comma-separated "
                                    "list to compare, or all."),
        minority: bool = typer.Option(False, "--minority", help="Also run each strategy's statements completed "
                                      "with the minority answer (a control that should not improve alignment)."),
        api_scoring: str = typer.Option("top", "--api-scoring", help="Exact mode over an API: top (the answer's "
                                        "top_logprobs: chat models, OpenAI) or echo (the prompt's own log-probabilities "
                                        "from text completions with echo, as for a base model: vLLM, selfalign "
                                        "serve)."),
        bootstrap: int = typer.Option(2000, "--bootstrap", help="Bootstrap resamples for the CI (0: none)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or tables."),
        options=None,
    ) -> None:
        """Evaluate self-alignment on the WVS probes: Table 1 and Figures 2, 3, 7 and 8 of the paper, and more."""
        from rich.console import Console

        from ..errors import InputError, SelfAlignError
        from ..eval import (EvalConfig, formats_arg, print_tables, resolve_pairs, run_eval, strategies_arg,
                            write_outputs)
        from . import fail

        try:
            pair_list, notes = resolve_pairs(language, country, pairs, probes)
            if concurrency < 1:
                raise InputError("--concurrency must be at least 1", param="concurrency")
            config = EvalConfig(model=model, pairs=pair_list, strategies=strategies_arg(strategy), mode=mode,
                                samples=samples, probes=probes, limit=limit, sample=sample, shuffle_orders=shuffle_orders,
                                orders=orders, seed=seed, concurrency=concurrency, api_base=api_base,
                                cache=cache, use_cache=not no_cache, tolerance=tolerance,
                                misaligned_below=misaligned_below, max_tokens=max_tokens, n_boot=bootstrap,
                                injection=injection, formats=formats_arg(format_), minority=minority,
                                api_scoring=api_scoring,
                                **_eval_options(options, EvalConfig))
            if not is_local(config.model):
                from ..models.provider import import_litellm

                # litellm prints a banner of provider links on every failed call; our one-line error suffices.
                import_litellm().suppress_debug_info = True
            run = run_eval(config, progress=not quiet)
        except SelfAlignError as e:
            raise fail(str(e))
        except FileNotFoundError as e:
            raise fail(str(e))
        except KeyboardInterrupt:
            print("selfalign: interrupted; responses so far are cached: rerun the same command to resume",
                  file=sys.stderr)
            raise typer.Exit(130)
        run.notes.extend(notes)
        run.results["notes"] = list(run.notes)
        # Piped output (a log file) gets a wide table rather than rich's 80-column default.
        console = Console() if Console().is_terminal else Console(width=140)
        if not quiet:
            print_tables(run.results, console)
            for n in notes:
                Console(stderr=True).print(f"[dim]skipped {n}[/dim]")
        if out is not None:
            written = write_outputs(run, out)
            if not quiet:
                console.print(f"wrote {len(written)} files to {out}/ (report: {out / 'report.md'})")
