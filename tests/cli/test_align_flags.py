"""The commands' alignment flags are AlignOptions' fields: names, defaults, bounds and choices come from
there, so Python, the proxy and every command accept and refuse the same values."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
import typer.main

import middleware
from middleware.cli import app
from middleware.cli.align_flags import flag_name
from middleware.cli.demos import DEFAULT_COUNTRY
from middleware.cli.eval import _OWN as EVAL_OWN
from middleware.errors import InputError
from middleware.options import AlignOptions, option_fields
from middleware.retrieval.aligner import SelfAligner

COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def _params(command: str) -> dict[str, click.Parameter]:
    return {p.name: p for p in COMMANDS[command].params}


@pytest.mark.parametrize("command,left_out", [("demos", ()), ("chat", ()), ("serve", ()), ("eval", EVAL_OWN)])
def test_every_option_is_a_flag_of_every_command(command, left_out):
    params = _params(command)
    for f in option_fields():
        if f.name in left_out:
            continue
        p = params[f.name]
        assert flag_name(f.name) in p.opts, (command, f.name)
        assert f.metadata["description"].split()[0] in p.help or command != "demos" or f.name in (
            "country", "language", "profile"), (command, f.name)
        if f.metadata["kind"] in ("int", "number"):
            assert (p.min, p.max) == (f.metadata["minimum"], f.metadata["maximum"]), (command, f.name)
        if f.metadata["choices"] is not None:
            assert all(name in p.help for name in f.metadata["choices"]()), (command, f.name)


def test_flag_defaults_are_the_fields_defaults():
    for command in ("demos", "chat", "eval"):
        params = _params(command)
        for f in option_fields():
            if f.name in params and not (command == "eval" and f.name in EVAL_OWN):
                expected = DEFAULT_COUNTRY if (command, f.name) == ("demos", "country") else f.default
                assert params[f.name].default == expected, (command, f.name)
    # serve: unset flags leave the config file's value; the help still names the default
    serve = _params("serve")
    assert serve["k"].default is None and f"[default: {AlignOptions().k}]" in serve["k"].help


def test_demos_help_names_its_default_country():
    assert "[default: us]" in subprocess.run([sys.executable, "-m", "middleware", "demos", "--help"],
                                             capture_output=True, text=True, timeout=120).stdout.replace("│", "")


@pytest.mark.parametrize("name,good,bad", [("k", 100, 101), ("k", 1, 0), ("min_margin", 0.99, 0.995),
                                           ("min_margin", 0.0, -0.01)])
def test_bounds_are_the_same_in_python_the_proxy_options_and_the_cli(name, good, bad):
    AlignOptions(**{name: good})
    assert getattr(SelfAligner(country="ro", **{name: good}), name) == good
    with pytest.raises(InputError, match=name):
        AlignOptions(**{name: bad})
    with pytest.raises(InputError, match=name):
        SelfAligner(country="ro", **{name: bad})
    flag = flag_name(name)
    ok = subprocess.run([sys.executable, "-m", "middleware", "demos", "women and work", "-c", "ro", flag, str(good),
                         "--json"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    for command in (["demos", "women and work", "-c", "ro"], ["eval"], ["serve"], ["chat", "-c", "ro"]):
        refused = subprocess.run([sys.executable, "-m", "middleware", *command, flag, str(bad)],
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and flag in refused.stderr and "Traceback" not in refused.stderr, command


def test_version_flag_prints_the_version():
    out = subprocess.run([sys.executable, "-m", "middleware", "--version"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"selfalign {middleware.__version__}"
