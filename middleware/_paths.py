"""Where the shipped data lives: ``profiles/`` in a checkout, ``middleware/_profiles`` in a wheel."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["profiles_dir", "cache_dir"]


def profiles_dir() -> Path:
    env = os.environ.get("SELFALIGN_PROFILES_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here / "_profiles", here.parent / "profiles"):
        if (candidate / "probes" / "en.yaml").is_file():
            return candidate
    raise FileNotFoundError("selfalign's profiles/ data folder is missing: reinstall the package")


def cache_dir() -> Path:
    """User cache (XDG): converted local models, evaluation caches."""
    env = os.environ.get("SELFALIGN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "selfalign"
