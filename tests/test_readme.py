"""The Python examples of the README and of docs/*.md are programs: each ```python block runs as it stands."""

import re
import subprocess
import sys

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Blocks that load the embedded model or run the evaluator take minutes on a CPU.
_SLOW = re.compile(r"litellm_backend|run_eval|local/")


def _blocks():
    for page in PAGES:
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)):
            marks = [pytest.mark.slow] if _SLOW.search(code) else []
            yield pytest.param(code, id=f"{page.relative_to(ROOT)}:block{i}", marks=marks)


BLOCKS = list(_blocks())


def test_readme_has_examples():
    assert len(BLOCKS) >= 2
    assert any("README.md" in b.id for b in BLOCKS) and any(b.id.startswith("docs") for b in BLOCKS)


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_python_block_runs(code, tmp_path):
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
