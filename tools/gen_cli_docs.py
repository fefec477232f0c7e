"""Write docs/cli.md from the ``--help`` of every ``selfalign`` command.

    python tools/gen_cli_docs.py            # rewrite docs/cli.md
    python tools/gen_cli_docs.py --check    # exit 1 if docs/cli.md is stale (tests/cli/test_cli_docs.py runs this)

The help is click's plain rendering at a fixed width (typer's rich boxes and colours are
switched off before typer is imported), so the file changes only when the help does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["TYPER_USE_RICH"] = "0"  # read by typer at import: plain click help, no box drawing
os.environ["NO_COLOR"] = "1"
os.environ["TERM"] = "dumb"

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"
WIDTH = 100

sys.path.insert(0, str(ROOT))

import typer  # noqa: E402

try:  # typer >= 0.20 carries its own copy of click
    from typer import _click as click  # noqa: E402
except ImportError:  # pragma: no cover
    import click  # noqa: E402


def _commands(cmd: click.Command, ctx: click.Context):
    yield ctx.command_path, cmd.get_help(ctx)
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, click.Context(sub, info_name=name, parent=ctx, terminal_width=WIDTH,
                                                        max_content_width=WIDTH))


def render() -> str:
    from middleware.cli import app

    root = typer.main.get_command(app)
    ctx = click.Context(root, info_name="selfalign", terminal_width=WIDTH, max_content_width=WIDTH)
    parts = ["# Command line\n",
             "Generated from `--help` by `python tools/gen_cli_docs.py`; do not edit by hand "
             "(`tests/cli/test_cli_docs.py` fails when this page is stale).\n"]
    for path, text in _commands(root, ctx):
        # Help texts escape "[" for rich's markup (users see rich help); plain help shows the backslash.
        text = text.replace("\\[", "[")
        lines = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
        parts.append(f"## `{path}`\n\n```text\n{lines}\n```\n")
    return "\n".join(parts)


def main(argv: list[str], target: Path = TARGET) -> int:
    text = render()
    if "--check" in argv:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is stale: run python tools/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
