"""The ``selfalign`` command line. Each sub-command lives in its own module with a ``register(app)``."""

from __future__ import annotations

import importlib
import sys

import typer

from ..errors import SelfAlignError

__all__ = ["app", "main"]

app = typer.Typer(name="selfalign", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Align any LLM with a country's values by WVS self-alignment demonstrations.")

# Modules that register commands; each is imported lazily-cheap (heavy imports happen inside commands).
_COMMANDS = ["demos", "profiles", "chat", "questionnaire", "eval", "serve"]
for _name in _COMMANDS:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"selfalign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show the warnings and log lines of "
                                       "the libraries underneath (transformers, litellm, httpx, ...); "
                                       "SELFALIGN_LOG=debug does the same."),
          version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    """Align any LLM with a country's values by WVS self-alignment demonstrations."""
    from .._quiet import quiet_dependencies

    quiet_dependencies(verbose or None)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print one line to stderr and exit: the CLI's only way to report bad input."""
    print(f"selfalign: error: {message}", file=sys.stderr)
    return typer.Exit(code)


def main() -> None:
    try:
        app()
    except SelfAlignError as e:
        print(f"selfalign: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
