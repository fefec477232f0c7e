"""tools/compare_results.py: several eval runs side by side, per pair and pooled, as a table and a plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _block(pct, ci, n):
    return {"improved_pct": pct, "improved_ci95": ci, "misaligned": n}


def _results(strategies: dict[str, tuple], per_pair: dict[str, dict[str, tuple]]) -> dict:
    return {"strategies": {s: _block(*v) for s, v in strategies.items()},
            "pairs": [{"pair": p, "strategies": {s: _block(*v) for s, v in ss.items()}} for p, ss in per_pair.items()]}


def test_columns_come_from_the_named_runs_and_strategies(tmp_path):
    paper = _results({"chrf": (75.0, [60, 88], 40)}, {"ro-ROU": {"chrf": (80.0, [50, 100], 10)},
                                                       "tr-TUR": {"chrf": (70.0, [40, 90], 10)}})
    system = _results({"chrf": (45.0, [30, 60], 38), "cultural": (20.0, [10, 31], 38)},
                      {"ro-ROU": {"chrf": (50.0, [20, 80], 9), "cultural": (None, None, 9)},
                       "tr-TUR": {"chrf": (40.0, [10, 70], 12), "cultural": (25.0, [0, 50], 12)}})
    for name, data in (("paper", paper), ("system", system)):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    out = tmp_path / "cmp"
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "compare_results.py"),
                          f"paper={tmp_path / 'paper.json'}", f"system={tmp_path / 'system.json'}",
                          "--column", "paper chrF++=paper:chrf", "--column", "product=system:chrf",
                          "--column", "cultural=system:cultural", "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    lines = (out / "comparison.md").read_text().splitlines()
    assert lines[0] == "| pair | paper chrF++ | product | cultural |"
    assert lines[2] == "| ro-ROU | 80.0 (50–100) n=10 | 50.0 (20–80) n=9 | – |"
    assert lines[-1] == "| **all** | 75.0 (60–88) n=40 | 45.0 (30–60) n=38 | 20.0 (10–31) n=38 |"
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "compare_results.py"),
                          f"paper={tmp_path / 'paper.json'}", "--column", "x=paper:semantic", "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "no 'paper:semantic'" in bad.stderr and "Traceback" not in bad.stderr
