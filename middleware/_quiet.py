"""Keeps dependencies' warnings and log lines out of what our commands print.

Called by our entry points (the CLI, each server worker, the embedded-model loader), never on
``import middleware``: a program that imports the library keeps its own logging and warnings
settings. ``--verbose`` or ``SELFALIGN_LOG=debug`` lets everything through again.
"""

from __future__ import annotations

import logging
import os
import warnings

__all__ = ["quiet_dependencies", "verbose_requested"]

# Loggers of the libraries under us that talk on stderr at INFO/WARNING level.
NOISY_LOGGERS = ("transformers", "torch", "accelerate", "huggingface_hub", "filelock", "litellm", "LiteLLM",
                 "LiteLLM Router", "LiteLLM Proxy", "httpx", "httpcore", "urllib3", "asyncio", "openai", "numexpr")


def verbose_requested() -> bool:
    return os.environ.get("SELFALIGN_LOG", "").strip().lower() == "debug"


def quiet_dependencies(verbose: bool | None = None) -> bool:
    """Silence dependency warnings and logs (unless verbose); returns whether output stays verbose."""
    if verbose is None:
        verbose = verbose_requested()
    if verbose:
        os.environ["SELFALIGN_LOG"] = "debug"  # server workers and subprocesses inherit the choice
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return True
    # Environment switches first: they also reach libraries imported later and worker processes.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # Python warnings are for developers, not our users: a library's deprecation often points at our
    # call site, and what a user must know we print ourselves ("selfalign: warning: ..."). --verbose
    # (or SELFALIGN_LOG=debug) shows them all, ours included; the tests see them too.
    warnings.filterwarnings("ignore")
    return False
