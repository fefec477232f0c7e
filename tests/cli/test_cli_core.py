import csv
import json
import subprocess
import sys

import pytest


def run(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "middleware", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_demos_json():
    doc = json.loads(run("demos", "Is abortion ever justifiable?", "--country", "us", "--json",
                     "--min-relevance", "0").stdout)
    out = doc["demonstrations"]
    fields = dict(part.split(":", 1) for part in doc["signature"].split("|"))
    assert fields["strategy"] == "chrf" and fields["k"] == "5" and fields["profile"] == "usa"
    assert fields["lang"] == "auto:en" and len(fields["data"]) == 8
    assert len(out) == 5 and set(out[0]) == {"text", "score", "probe_id", "category", "language"}
    assert out[0]["language"] == "en"  # detected from the message (language auto)
    assert out[0]["probe_id"] == "Q184" and out[0]["score"] >= out[-1]["score"]
    assert doc["relevance"] == {"inject": True, "score": 1.0, "threshold": 0.0,
                                "reason": "min_relevance is 0: every message gets demonstrations"}


def test_demos_json_reports_the_relevance_decision():
    coding = json.loads(run("demos", "Write a Python function that sorts a list of numbers.", "--country", "us",
                            "--json").stdout)
    r = coding["relevance"]
    assert coding["demonstrations"] == [] and list(r) == ["inject", "score", "threshold", "reason"]
    assert r["inject"] is False and r["reason"] == "not about values" and r["score"] < r["threshold"]
    values = json.loads(run("demos", "Is abortion ever justifiable?", "--country", "us", "--json").stdout)
    assert values["relevance"]["inject"] is True and values["demonstrations"][0]["probe_id"] == "Q184"
    assert 1 <= len(values["demonstrations"]) <= 5
    table = run("demos", "Write a Python function that sorts a list of numbers.", "--country", "us").stdout
    assert "No demonstrations: not about values" in table and "--min-relevance 0" in table


def test_demos_table_shows_demonstrations():
    out = run("demos", "Is abortion ever justifiable?", "--country", "de", "--k", "2", "--language", "en").stdout
    assert "Abortion is" in out and "chrF++" in out


@pytest.mark.parametrize("args,needle", [
    (["demos", "hi", "--country", "zz"], "unknown country 'zz'"),
    (["demos", "hi", "--country", "ro", "--language", "xx"], "unknown language 'xx'"),
    (["demos", "hi", "--country", "ro", "--strategy", "best"], "unknown strategy 'best'"),
    (["demos", "hi", "--profile", "/nonexistent/me.yaml"], "cannot read profile"),
    (["profiles", "build", "--wvs", "/nonexistent.csv"], "no such file"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    p = run(*args, check=False)
    assert p.returncode == 2 and needle in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_profiles_list_json():
    rows = {r["country"]: r for r in json.loads(run("profiles", "list", "--json").stdout)}
    assert len(rows) == 14 and rows["USA"]["answered"] >= 237 and rows["ROU"]["sources"]


def test_profiles_build_from_respondent_file(tmp_path):
    path = tmp_path / "wvs.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["B_COUNTRY_ALPHA", "W_WEIGHT", "Q28", "Q29"])
        w.writerows([["ROU", 1.0, 1, 4], ["ROU", 2.0, 4, 4], ["ROU", 0.5, 2, -1]])
    out = tmp_path / "answers"
    p = run("profiles", "build", "--wvs", str(path), "--out", str(out))
    assert "1 countries" in p.stdout
    data = json.loads((out / "ROU.json").read_text())
    assert data["answers"]["Q28"]["majority"] == 1 and data["answers"]["Q28"]["shares"][1] == pytest.approx(2 / 3.5)


def test_import_arora_cli(shared_data, tmp_path):
    p = run("profiles", "import-arora", str(shared_data / "arora-probes"), "--out", str(tmp_path))
    assert "only one option" in p.stdout and len(list(tmp_path.glob("*.yaml"))) == 13
