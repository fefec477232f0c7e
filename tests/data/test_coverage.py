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

# The paper countries of wvs7-shares-12 (respondent-level shares, Q1-Q259) and the probes each can
# answer: every probe whose question the country asked (IRN, PAK, TUR, VNM skipped some; VNM Q23 is a
# 50/50 tie). Indonesia is not in that file and keeps the 45-country shares (Q1-Q198 less Q94-Q105).
FULL = {"GRC": 243, "MYS": 243, "ROU": 243, "PAK": 242, "PHL": 243, "BGD": 243, "SRB": 243, "VNM": 239,
        "KOR": 243, "TUR": 239, "IRN": 238}
THIN = "COL"  # Colombia: goqa matches and means only (32 probes), a country that draws the warning


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
    for a3, n in FULL.items():
        c = cov.coverage(a3)
        assert c["answered"] == n >= 230, a3
        assert c["categories"]["Perceptions of Corruption"]["answered"] == c["categories"]["Perceptions of Corruption"]["probes"]
        assert c["categories"]["Political Interest and Political Participation"]["answered"] >= 30, a3
    assert cov.coverage("IDN")["answered"] == 173  # not in wvs7-shares-12 (docs/profiles.md)


def test_warning_names_the_count_only_below_the_minimum():
    n = len(load_answers(THIN).answers)
    assert n < cov.MIN_COVERAGE
    w = cov.coverage_warning(THIN)
    assert w and f"only {n} " in w and "Colombia" in w
    assert cov.coverage_warning("ro") is None and cov.coverage_warning("USA") is None
    assert cov.coverage_warning("gr") is None and cov.coverage_warning("MYS") is None  # full profiles now
    assert cov.coverage_warning("ro", minimum=1000) is not None  # the threshold is the only difference


def test_warning_once_per_country(fresh_warnings):
    assert cov.coverage_warning_once("COL") is not None
    assert cov.coverage_warning_once("Colombia") is None  # same country, other spelling: already warned
    assert cov.coverage_warning_once("PER") is not None
    assert cov.coverage_warning_once("ROU") is None and cov.coverage_warning_once("ROU") is None


def test_server_warns_once_per_country(fresh_warnings, caplog):
    from middleware.retrieval.cache import AlignerCache
    from middleware.server.config import ServerConfig
    from middleware.server.routing import align_key

    cache, config = AlignerCache(), ServerConfig(model="openai/x", api_base="http://127.0.0.1:9/v1")
    with caplog.at_level(logging.WARNING, logger="selfalign.server"):
        for k in (3, 4, 5):  # three requests for Colombia (different k), one warning
            align_key({"country": "co", "k": k}, {}, None, config, cache)
        align_key({"country": "ro"}, {}, None, config, cache)
        align_key({"country": "gr"}, {}, None, config, cache)
    warnings = [r.getMessage() for r in caplog.records if r.name == "selfalign.server"]
    assert len(warnings) == 1 and "Colombia answers only" in warnings[0]


def test_profiles_list_json_has_sources_and_categories():
    rows = {r["country"]: r for r in json.loads(run("profiles", "list", "--json").stdout)}
    assert set(rows) == set(PAPER_PAIRS.values())
    for a3, n in FULL.items():
        assert rows[a3]["answered"] == n and rows[a3]["sources"] == {"wvs7-shares-12": n}, a3
    assert rows["IDN"]["answered"] == 173 and rows["IDN"]["sources"]["wvs7-shares-46"] == 169
    assert rows["USA"]["answered"] == 242 and rows["DEU"]["answered"] == 243
    assert rows["ROU"]["categories"]["Social Values, Norms, Stereotypes"]["answered"] >= 40


def test_profiles_list_table_shows_categories():
    out = run("profiles", "list").stdout
    assert "Answered probes per WVS category" in out and "Perceptions of Corruption" in out and "Romania" in out


def test_demos_warns_once_on_stderr_for_a_thin_country():
    p = run("demos", "Is divorce justifiable?", "--country", "co", "--language", "en", "--json",
            "--min-relevance", "0")
    assert p.stderr.count("warning:") == 1 and "Colombia answers only" in p.stderr
    assert json.loads(p.stdout)["demonstrations"]  # the demonstrations are still given
    for full in ("ro", "gr"):
        assert "warning" not in run("demos", "Is divorce justifiable?", "--country", full, "--language", "en").stderr


def test_army_question_for_greece_draws_on_political_systems():
    # The example: with 34 answered probes Greece got one statement on political systems.
    out = json.loads(run("demos", "Should the army rule the country?", "--country", "gr", "--k", "10",
                         "--json", "--min-relevance", "0").stdout)["demonstrations"]
    ids = [d["probe_id"] for d in out]
    assert ids[0] == "Q237", ids  # "Having the army rule the country would be _."
    systems = [i for i in ids if 235 <= int(i[1:]) <= 253]
    assert len(systems) >= 3, ids
    assert load_answers("GRC").answers["Q237"].majority == 1  # Greece: bad


def test_romanian_question_on_women_and_work_gets_gender_demonstrations():
    # The example: before the 45-country shares Romania answered 38 probes, none on women and work.
    out = json.loads(run("demos", "Este important ca femeile să lucreze?", "--country", "ro", "--language", "ro",
                         "--k", "10", "--json", "--min-relevance", "0").stdout)["demonstrations"]
    ids = [d["probe_id"] for d in out]
    # women and men, work and family: equal rights, women less corrupt, political leaders, business executives,
    # university, women's organisations
    gender = {"Q249", "Q119", "Q29", "Q30", "Q31", "Q28", "Q32", "Q33", "Q35", "Q80", "Q104"}
    assert {"Q249", "Q119"} <= set(ids[:3]) and len(gender & set(ids)) >= 4, ids  # Q119 ties with Q162
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
    # k at its bound (100): the near-ties among the best 100 give way to the next best, nothing else does.
    loose = SelfAligner(country="ro", language="en", k=100)
    strict = SelfAligner(country="ro", language="en", k=100, min_margin=0.05)
    got_loose = {d.probe_id for d in loose.demonstrations("Is it important for women to work?")}
    got_strict = {d.probe_id for d in strict.demonstrations("Is it important for women to work?")}
    near_ids = {pid for _, pid in near}
    assert near_ids & got_loose and not near_ids & got_strict
    assert got_loose - got_strict == near_ids & got_loose  # nothing else is left out
    assert len(got_strict) == len(got_loose) == 100
    # mean-derived answers (no margin) stay
    thin = SelfAligner(country=THIN, language="en", k=100, min_margin=0.5)
    means = {pid for pid, a in load_answers(THIN).answers.items() if a.margin is None}
    assert means and means <= {d.probe_id for d in thin.demonstrations("Is divorce justifiable?")}


@pytest.mark.parametrize("bad", [-0.1, 0.995, 1.0, "0.1", True])
def test_min_margin_rejects_bad_values(bad):
    with pytest.raises(SelfAlignError, match="min_margin"):
        SelfAligner(country="ro", min_margin=bad)
