"""No dependency noise: our commands print our output only, unless --verbose / SELFALIGN_LOG=debug asks for more."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What libraries under us print when nobody stops them (transformers' deprecations, llama.cpp's
# loader, litellm's banners, HTTP client logs).
NOISE = ("warning", "deprecat", "llama_", "llm_load", "ggml", "litellm", "httpx", "http request", "info:",
         "traceback", "past_key_values", "huggingface")


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
         "COLUMNS": "120", "OMP_NUM_THREADS": "1", **env}
    e.pop("SELFALIGN_LOG", None) if "SELFALIGN_LOG" not in env else None
    return subprocess.run([sys.executable, "-m", "middleware", *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=e)


@pytest.mark.slow
def test_chat_on_the_embedded_model_prints_only_our_output():
    r = _cli("chat", "--country", "us", "--message", "Should a mother with young children work for pay?",
             "--max-tokens", "24", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "the model gave no answer"
    assert r.stderr == "", f"stderr holds output that is not ours:\n{r.stderr[:2000]}"
    lowered = r.stdout.lower()
    assert not [w for w in NOISE if w in lowered], r.stdout[:2000]


def test_demos_prints_only_our_output():
    r = _cli("demos", "Should a mother with young children work for pay?", "--country", "us")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert "agree" in r.stdout.lower()


def test_importing_the_library_changes_no_global_logging_or_warnings_state():
    # numpy and scipy register their own filters on import: import them first.
    code = ("import logging, warnings, sys, numpy, scipy.sparse, scipy.stats; before = (list(warnings.filters), "
            "[logging.getLogger(n).level for n in ('transformers', 'litellm', 'httpx')]); "
            "import middleware, middleware.chat, middleware.server; "
            "after = (list(warnings.filters), [logging.getLogger(n).level for n in ('transformers', 'litellm', 'httpx')]); "
            "sys.exit(0 if before == after else 1)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_quiet_silences_dependency_loggers_and_every_python_warning():
    from middleware._quiet import quiet_dependencies

    with warnings.catch_warnings(record=True) as caught:
        level = logging.getLogger("litellm").level
        try:
            assert quiet_dependencies(verbose=False) is False
            assert logging.getLogger("litellm").level == logging.ERROR
            warnings.warn_explicit("library noise", FutureWarning, "x.py", 1, module="transformers.utils")
            warnings.warn_explicit("at our call site", DeprecationWarning, "x.py", 1, module="middleware.data.answers")
            warnings.warn_explicit("unclosed file", ResourceWarning, "x.py", 1, module="middleware.data.arora")
        finally:
            logging.getLogger("litellm").setLevel(level)
    assert [str(w.message) for w in caught] == []


def test_verbose_lets_dependency_output_through():
    code = ("import logging, sys; from middleware._quiet import quiet_dependencies; "
            "v = quiet_dependencies(); sys.exit(0 if v and logging.getLogger('litellm').level == logging.NOTSET else 1)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "SELFALIGN_LOG": "debug"})
    assert r.returncode == 0, r.stderr
