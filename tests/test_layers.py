"""The layers of docs/architecture.md hold: import-linter's contracts (pyproject.toml) pass, and no two
modules import each other, through any chain, lazy imports inside functions included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _lint(config: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or pytest.fail("lint-imports is missing: pip install import-linter")
    args = [exe, "--no-cache"] + (["--config", str(config)] if config else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_lint_imports_keeps_every_contract():
    done = _lint()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"Contracts: {len(CONFIG['contracts'])} kept, 0 broken" in done.stdout


def test_lint_imports_fails_on_a_back_arrow(tmp_path):
    """The contracts catch what they are there for: with the layers upside down, every import is a back-arrow."""
    layers = next(c for c in CONFIG["contracts"] if c["type"] == "layers")["layers"]
    config = tmp_path / "upside-down.ini"
    config.write_text("[importlinter]\nroot_package = middleware\n\n[importlinter:contract:upside-down]\n"
                      "name = upside down\ntype = layers\ncontainers = middleware\nlayers =\n"
                      + "".join(f"    {layer}\n" for layer in reversed(layers)))
    done = _lint(config)
    assert done.returncode != 0 and "BROKEN" in done.stdout
    assert "middleware.cli" in done.stdout and "middleware.errors" in done.stdout


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("middleware", cache_dir=None, exclude_type_checking_imports=True)
    assert len(graph.modules) > 60
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.append(f"{module} -> " + " -> ".join(chain))
    assert not cycles, "\n".join(cycles)


def test_lazy_imports_are_in_the_graph():
    """grimp reads imports inside functions: the cycle check above covers the lazy ones too."""
    graph = grimp.build_graph("middleware", cache_dir=None)
    # middleware/__init__.py imports the OpenAI wrapper only inside __getattr__.
    assert "middleware.integrations.openai_client" in graph.find_modules_directly_imported_by("middleware")
