"""docs/cli.md is generated from --help: it must match what the commands print today."""

import subprocess
import sys

from conftest import ROOT

SCRIPT = ROOT / "tools" / "gen_cli_docs.py"


def test_cli_docs_are_current():
    p = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr + "\n(regenerate with: python tools/gen_cli_docs.py)"


def test_every_command_is_documented_in_plain_text():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in ("demos", "chat", "eval", "serve", "profiles questionnaire", "profiles build"):
        assert f"## `selfalign {command}`" in text
    assert "\x1b" not in text and "╭" not in text and "│" not in text  # no ANSI colour, no rich boxes
    assert "[default: 127.0.0.1]" in text  # bracketed text survives (rich would read it as markup)


def test_check_fails_when_stale(tmp_path):
    # The same check against a copy of the page with one line added must report it stale.
    copy = tmp_path / "page.md"
    copy.write_text((ROOT / "docs" / "cli.md").read_text(encoding="utf-8") + "an edit by hand\n", encoding="utf-8")
    code = (f"import pathlib, runpy, sys; gen = runpy.run_path({str(SCRIPT)!r}, run_name='gen');"
            f"sys.exit(gen['main'](['--check'], target=pathlib.Path({str(copy)!r})))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "page.md is stale: run python tools/gen_cli_docs.py" in p.stderr
