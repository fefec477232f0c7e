"""The public names (like httpx's test_exported_members): importable, documented, stable paths kept."""

from __future__ import annotations

import importlib
import inspect

import middleware
from conftest import ROOT


def _documented(name: str, value: object) -> bool:
    doc = inspect.getdoc(value) or ""
    # A dataclass without a docstring gets its signature as __doc__: that documents nothing.
    return bool(doc.strip()) and not doc.startswith(f"{name}(")


def test_exported_members():
    docs = "".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    assert len(middleware.__all__) == len(set(middleware.__all__))
    for name in middleware.__all__:
        value = getattr(middleware, name)  # importable (wrap_openai is imported on first use)
        if inspect.isclass(value) or inspect.isroutine(value) or callable(value):
            assert _documented(name, value), f"middleware.{name} has no docstring"
            assert getattr(value, "__module__", "").startswith("middleware."), name
        else:  # a constant: documented in the README or the docs
            assert f"middleware.{name}" in docs, f"middleware.{name} is not documented"
    namespace: dict = {}
    exec("from middleware import *", namespace)
    assert set(middleware.__all__) <= set(namespace)


def test_the_documented_entry_points():
    from middleware import SelfAligner, align, wrap_openai
    from middleware.integrations.openai_client import wrap_openai as real

    assert wrap_openai is real and callable(align) and inspect.isclass(SelfAligner)
    messages = [{"role": "user", "content": "How important is family in your life?"}]
    aligned = align(messages, country="ro", language="en", k=2)
    assert aligned[1:] == messages and aligned[0]["role"] == "system" and aligned[0]["content"].count("\n- ") == 2
    assert align(messages, country="none") == messages


def test_litellm_config_dotted_path_resolves():
    module, _, attr = "middleware.litellm_callback.selfalign_callback".rpartition(".")
    callback = getattr(importlib.import_module(module), attr)
    from middleware.integrations.litellm_callback import SelfAlignCallback, selfalign_callback

    assert callback is selfalign_callback and isinstance(callback, SelfAlignCallback)


def test_version_is_written_once():
    """pyproject reads the version from middleware/_version.py; no other file of the package writes one."""
    import re
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    source = ROOT / pyproject["tool"]["hatch"]["version"]["path"]
    (written,) = re.findall(r'__version__ = "([^"]+)"', source.read_text())
    assert written == middleware.__version__ and re.fullmatch(r"\d+\.\d+\.\d+", written)
    others = [p for p in (ROOT / "middleware").rglob("*.py") if p != source and "__version__ = " in p.read_text()]
    assert not others, others


def test_every_public_module_declares_its_names():
    """`__all__` on every public module, and every name in it exists (a renamed function cannot linger there)."""
    import pkgutil

    checked = 0
    for info in pkgutil.walk_packages(middleware.__path__, "middleware."):
        last = info.name.rsplit(".", 1)[-1]
        if last.startswith("_") or any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        module = importlib.import_module(info.name)
        assert isinstance(getattr(module, "__all__", None), list), f"{info.name} has no __all__"
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, f"{info.name}.__all__ names {missing}, which it does not define"
        checked += 1
    assert checked > 60
