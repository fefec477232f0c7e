"""Coverage of the built-in answers: `profiles list`, the low-coverage warning, near-ties and min_margin."""

import json
import logging
import subprocess
import sys

import pytest

from middleware.data import coverage as cov
from middleware.data.answers import CountryAnswer, load_answers
from middleware.data.countries import PAPER_PAIRS
from middleware.errors import SelfAlignError
from middleware.retrieval.aligner import SelfAligner

FULL = ("ROU", "PAK", "PHL", "IDN", "BGD", "SRB", "VNM", "KOR", "TUR", "IRN")


def run(*args):
    p = subprocess.run([sys.executable, "-m", "middleware", *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(cov, "_warned", set())


def test_coverage_counts_add_up():
    for a3 in PAPER_PAIRS.values():
        c = cov.coverage(a3)
        assert sum(c["sources"].values()) == c["answered"] == len(load_answers(a3).answers)
        assert sum(v["answered"] for v in c["categories"].values()) == c["answered"]
        assert all(v["answered"] <= v["probes"] for v in c["categories"].values())
    # the ten countries of the 45-country file answer every probe of the Q1-Q198 value blocks they were asked
    for a3 in FULL:
        c = cov.coverage(a3)
        assert c["answered"] >= (168 if a3 == "TUR" else 170), a3
        assert c["categories"]["Perceptions of Corruption"]["answered"] == c["categories"]["Perceptions of Corruption"]["probes"]


def test_warning_names_the_count_only_below_the_minimum():
    n = len(load_answers("GRC").answers)
    assert n < cov.MIN_COVERAGE
    w = cov.coverage_warning("GRC")
    assert w and f"only {n} " in w and "Greece" in w
    assert cov.coverage_warning("ro") is None and cov.coverage_warning("USA") is None
    assert cov.coverage_warning("ro", minimum=1000) is not None  # the threshold is the only difference


def test_warning_once_per_country(fresh_warnings):
    assert cov.coverage_warning_once("GRC") is not None
    assert cov.coverage_warning_once("Greece") is None  # same country, other spelling: already warned
    assert cov.coverage_warning_once("MYS") is not None
    assert cov.coverage_warning_once("ROU") is None and cov.coverage_warning_once("ROU") is None


def test_server_warns_once_per_country(fresh_warnings, caplog):
    from middleware.retrieval.cache import AlignerCache
    from middleware.server.config import ServerConfig
    from middleware.server.routing import align_key

    cache, config = AlignerCache(), ServerConfig(model="openai/x", api_base="http://127.0.0.1:9/v1")
    with caplog.at_level(logging.WARNING, logger="selfalign.server"):
        for k in (3, 4, 5):  # three requests for Greece (different k), one warning
            align_key({"country": "gr", "k": k}, {}, None, config, cache)
        align_key({"country": "ro"}, {}, None, config, cache)
    warnings = [r.getMessage() for r in caplog.records if r.name == "selfalign.server"]
    assert len(warnings) == 1 and "Greece answers only" in warnings[0]


def test_profiles_list_json_has_sources_and_categories():
    rows = {r["country"]: r for r in json.loads(run("profiles", "list", "--json").stdout)}
    assert set(rows) == set(PAPER_PAIRS.values())
    for a3 in FULL:
        assert rows[a3]["answered"] >= 168 and rows[a3]["sources"]["wvs7-shares-46"] >= 166
    assert rows["GRC"]["answered"] < 100 and set(rows["GRC"]["sources"]) == {"goqa", "wvs7-means"}
    assert rows["ROU"]["categories"]["Social Values, Norms, Stereotypes"]["answered"] >= 40


def test_profiles_list_table_shows_categories():
    out = run("profiles", "list").stdout
    assert "Answered probes per WVS category" in out and "Perceptions of Corruption" in out and "Romania" in out


def test_demos_warns_once_on_stderr_for_a_thin_country():
    p = run("demos", "Is divorce justifiable?", "--country", "gr", "--language", "en", "--json", "--min-relevance", "0")
    assert p.stderr.count("warning:") == 1 and "Greece answers only" in p.stderr
    assert json.loads(p.stdout)["data"]  # the demonstrations are still given
    assert "warning" not in run("demos", "Is divorce justifiable?", "--country", "ro", "--language", "en").stderr


def test_romanian_question_on_women_and_work_gets_gender_demonstrations():
    # The example: before the 45-country shares Romania answered 38 probes, none on women and work.
    out = json.loads(run("demos", "Este important ca femeile să lucreze?", "--country", "ro", "--language", "ro",
                         "--k", "10", "--json", "--min-relevance", "0").stdout)["data"]
    ids = [d["probe_id"] for d in out]
    # women and men, work and family: women less corrupt, political leaders, business executives, university
    gender = {"Q119", "Q29", "Q30", "Q31", "Q28", "Q32", "Q33", "Q35", "Q80"}
    assert "Q119" in ids[:2] and len(gender & set(ids)) >= 4, ids  # Q119 ties with Q162 at the top
    answered = load_answers("ROU").answers
    assert {"Q28", "Q29", "Q30", "Q31", "Q32", "Q33", "Q35"} <= set(answered)


def test_margin_is_the_lead_of_the_majority():
    a = CountryAnswer(majority=1, shares=(0.48, 0.52), source="x")
    assert a.margin == pytest.approx(0.04)
    assert CountryAnswer(majority=0, source="x", derived_from="mean").margin is None


def test_min_margin_leaves_near_ties_out():
    answers = load_answers("ROU").answers
    near = sorted((a.margin, pid) for pid, a in answers.items() if a.margin is not None and a.margin < 0.05)
    assert near, "Romania has near-ties to test with"
    loose = SelfAligner(country="ro", language="en", k=243)
    strict = SelfAligner(country="ro", language="en", k=243, min_margin=0.05)
    got_loose = {d.probe_id for d in loose.demonstrations("Is it important for women to work?")}
    got_strict = {d.probe_id for d in strict.demonstrations("Is it important for women to work?")}
    assert {pid for _, pid in near} <= got_loose and not {pid for _, pid in near} & got_strict
    assert got_loose - got_strict == {pid for _, pid in near}  # nothing else is left out
    # mean-derived answers (no margin) stay
    grc = SelfAligner(country="gr", language="en", k=243, min_margin=0.5)
    means = {pid for pid, a in load_answers("GRC").answers.items() if a.margin is None}
    assert means <= {d.probe_id for d in grc.demonstrations("Is divorce justifiable?")}


@pytest.mark.parametrize("bad", [-0.1, 1.0, "0.1", True])
def test_min_margin_rejects_bad_values(bad):
    with pytest.raises(SelfAlignError, match="min_margin"):
        SelfAligner(country="ro", min_margin=bad)
