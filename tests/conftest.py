import os
from pathlib import Path

import pytest

# No network at test time: every model and the litellm cost map come from local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"public data not found at {SHARED} (see ../shared/data/README.md)")
    return SHARED


@pytest.fixture(scope="module")
def upstream():
    """A scripted OpenAI-compatible server on loopback (tests/fake_upstream.py), one per test module."""
    from fake_upstream import FakeUpstream

    with FakeUpstream() as up:
        yield up
