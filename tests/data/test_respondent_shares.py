"""wvs7-shares-12: respondent-level shares as a source, its collapse rules, questions not asked, the
--weighting flag and source priority."""

import json
import re
import subprocess
import sys

import pytest

from middleware.data.answers import CountryAnswers, load_answers
from middleware.data.audit import agreement_by_country
from middleware.data.build import (build_sources, codebook_scales, collapse, compare_shares, drop_not_asked, merge,
                                   respondent_shares)
from middleware.data.probes import load_probes
from middleware.data.respondent_shares import (RESPONDENT_SHARES_FILE, RespondentShares, from_respondent_shares,
                                               off_scale, read_respondent_shares, weighting_report)

EN = {p.id: p for p in load_probes("en")}
PROBES = list(EN.values())
TWELVE = ("GRC", "MYS", "ROU", "PAK", "PHL", "BGD", "SRB", "VNM", "KOR", "IRN", "TUR", "DEU")


@pytest.fixture(scope="module")
def raw(shared_data):
    return json.loads((shared_data / RESPONDENT_SHARES_FILE).read_text())


@pytest.fixture(scope="module")
def sources(shared_data):
    return build_sources(PROBES, data_dir=shared_data)


def _by_hand(raw, weighting, country, pid):
    p, dist = EN[pid], raw[weighting][country][EN[pid].wvs_id]
    s = [sum(dist.get(str(c), 0.0) for c in group) for group in p.codes]
    return s[0] / sum(s), int(s[1] > s[0]), raw["n_valid"][country][p.wvs_id] * sum(s)


@pytest.mark.parametrize("weighting", ["unweighted", "weighted"])
def test_shares_match_the_file_with_provenance(raw, shared_data, weighting):
    built = from_respondent_shares(read_respondent_shares(shared_data / RESPONDENT_SHARES_FILE, weighting), PROBES)
    assert set(built) == set(TWELVE)
    # a 4-point scale, the 0/1/2 membership block, 0-10 with a spontaneous 0, a 3-code immigration item,
    # a 5-point agree scale with a midpoint and the vote item with "not allowed to vote" (code 4)
    for country in ("GRC", "MYS", "TUR"):
        for pid in ("Q28", "Q94", "Q241", "Q122", "Q33", "Q221", "Q235", "Q254"):
            share, majority, n = _by_hand(raw, weighting, country, pid)
            a = built[country][pid]
            assert a.shares[0] == pytest.approx(share) and a.majority == majority, (country, pid)
            assert a.n == pytest.approx(n, abs=1e-2) and a.rule == EN[pid].rule()
            assert a.source == ("wvs7-shares-12" if weighting == "unweighted" else "wvs7-shares-12-weighted")


def test_membership_block_collapses_0_1_2(raw, shared_data):
    p = EN["Q94"]
    assert p.codes == ((1, 2), (0,))  # inactive and active members vs "don't belong"
    a = collapse(p, {0: 0.45, 1: 0.35, 2: 0.2}, "x")
    assert a.majority == 0 and a.shares == pytest.approx((0.55, 0.45))  # members together outnumber non-members
    assert collapse(p, {0: 0.6, 2: 0.4}, "x").majority == 1
    built = from_respondent_shares(read_respondent_shares(shared_data / RESPONDENT_SHARES_FILE), PROBES)
    for pid in (f"Q{i}" for i in range(94, 106)):  # the whole block, for every country of the file
        for country in TWELVE:
            d = raw["unweighted"][country][pid]
            assert set(d) == {"0", "1", "2"}
            assert built[country][pid].majority == int(d["0"] > d["1"] + d["2"]), (country, pid)
    assert built["GRC"]["Q94"].shares[1] == pytest.approx(raw["unweighted"]["GRC"]["Q94"]["0"])


def test_every_probe_rule_fits_its_wvs_scale(raw, shared_data):
    scales = codebook_scales(shared_data / "wvs7-meta/codebook.json", {p.wvs_id for p in PROBES})
    labels = json.loads((shared_data / "wvs7-meta/codebook.json").read_text())
    neutral = re.compile(r"^(hard to say|neither .*|don't mind|not allowed to vote|fair|or about the same|"
                         r"i am not \[nationality\])$", re.I)
    for p in PROBES:
        used = set(p.codes[0]) | set(p.codes[1])
        assert used <= scales[p.wvs_id], p.id  # no code the question does not have
        for code in scales[p.wvs_id] - used:  # what a rule leaves out is a midpoint or a non-answer
            assert neutral.match(labels[p.wvs_id]["choices"][str(code)]), (p.id, code)
    # and every country of the file answered each question on that scale
    rs = read_respondent_shares(shared_data / RESPONDENT_SHARES_FILE)
    assert off_scale(rs, scales) == []


def test_a_question_asked_on_another_scale_stays_unanswered():
    rs = RespondentShares("unweighted", {"GRC": {"Q28": {1: 0.2, 3: 0.3, 7: 0.5}, "Q29": {1: 0.7, 4: 0.3}}},
                          {"GRC": {"Q28": 100, "Q29": 100}})
    bad = off_scale(rs, {"Q28": {1, 2, 3, 4}, "Q29": {1, 2, 3, 4}})
    assert bad == [("GRC", "Q28", (7,))]
    built = from_respondent_shares(rs, PROBES, skip=[(c, q) for c, q, _ in bad])
    assert set(built["GRC"]) == {"Q29"}


def test_questions_not_asked_stay_unanswered(raw, sources):
    built = merge(*sources.values())
    not_asked = {"IRN": {"Q22", "Q36", "Q183", "Q193", "Q240"}, "PAK": {"Q240"},
                 "TUR": {"Q192", "Q194", "Q237", "Q245"}, "VNM": {"Q219", "Q220", "Q240"}}
    for country, ids in not_asked.items():
        assert not ids & set(raw["unweighted"][country])
        assert not ids & set(built[country].answers), country  # no other source, no other country fills them
        assert set(built[country].answers) <= set(raw["unweighted"][country])
    # other countries asked them: an answer is never borrowed from another country
    assert all(q in built[c].answers for c in ("GRC", "ROU") for q in ("Q22", "Q183", "Q237", "Q240"))


def test_drop_not_asked_only_touches_lower_sources():
    a = collapse(EN["Q22"], {1: 0.7, 2: 0.3}, "goqa")
    parts = {"wvs": {"IRN": {"Q22": a}}, "wvs7-shares-12": {"IRN": {}}, "goqa": {"IRN": {"Q22": a}, "IRQ": {"Q22": a}},
             "wvs7-means": {"IRN": {"Q28": a}}}
    dropped = drop_not_asked(parts, {"IRN": {"Q28"}}, PROBES, below="wvs7-shares-12")
    assert dropped == [("goqa", "IRN", "Q22")]
    assert parts["wvs"]["IRN"] == {"Q22": a}  # the user's own respondent file ranks higher
    assert parts["goqa"]["IRQ"] == {"Q22": a} and parts["wvs7-means"]["IRN"] == {"Q28": a}


def test_priority_published_respondent_shares_win(sources):
    built = merge(*sources.values())
    # Germany and the USA: wvs7-shares first, exactly as before the new file
    assert set(built["DEU"].counts_by_source()) == {"wvs7-shares"} and len(built["DEU"].answers) == 243
    for country in ("GRC", "MYS", "ROU", "IRN"):
        assert set(built[country].counts_by_source()) == {"wvs7-shares-12"}, country
    # Greece had goqa and mean answers before: where both exist, the respondent-level shares win
    assert "Q182" in sources["wvs7-means"]["GRC"] and built["GRC"].answers["Q182"].source == "wvs7-shares-12"
    assert set(sources["goqa"]["GRC"]) <= set(built["GRC"].answers)
    a12 = collapse(EN["Q28"], {1: 0.3, 3: 0.7}, "wvs7-shares-12")
    a46 = collapse(EN["Q28"], {1: 0.7, 3: 0.3}, "wvs7-shares-46")
    cspa = collapse(EN["Q28"], {1: 0.6, 3: 0.4}, "wvs7-shares")
    assert merge({"GRC": {"Q28": a46}}, {"GRC": {"Q28": a12}})["GRC"].answers["Q28"] == a12
    assert merge({"GRC": {"Q28": a12}}, {"GRC": {"Q28": cspa}})["GRC"].answers["Q28"] == cspa


def test_unweighted_equals_the_45_country_file(shared_data):
    rs = respondent_shares(shared_data, "unweighted")
    n, worst, over = compare_shares(rs.flat(), shared_data / "wvs7-shares-46/shares.json")
    assert n == 1842 and over == [] and worst <= 1e-4


def test_weighting_numbers_behind_the_default(shared_data, sources):
    others = merge(*(v for k, v in sources.items() if k != "wvs7-shares-12"))
    r = weighting_report(shared_data / RESPONDENT_SHARES_FILE, PROBES, {c: a.answers for c, a in others.items()})
    assert r["both"] == 2902
    assert {(c, p) for c, p, *_ in r["weighted_vs_unweighted"]} == {
        ("GRC", "Q81"), ("GRC", "Q167"), ("GRC", "Q210"), ("PHL", "Q139"), ("PHL", "Q245"), ("ROU", "Q118")}
    # every one a near-tie in both weightings (margins of 0.05 or less)
    assert all(abs(u - 0.5) < 0.03 and abs(w - 0.5) < 0.03 for _, _, u, w in r["weighted_vs_unweighted"])
    assert {(c, p) for c, p, _ in r["unweighted_vs_others"]} == {("BGD", "Q213"), ("SRB", "Q235")}
    assert len(r["weighted_vs_others"]) == 4


def test_shipped_profiles_agree_with_the_new_shares(shared_data):
    shipped = {c: load_answers(c).answers for c in TWELVE}
    for weighting, floor in (("unweighted", 1.0), ("weighted", 0.98)):
        ref = from_respondent_shares(read_respondent_shares(shared_data / RESPONDENT_SHARES_FILE, weighting), PROBES)
        agree = agreement_by_country(shipped, ref)
        assert set(agree) == set(TWELVE)
        for country, (n, ok, off) in agree.items():
            assert n >= 238 and ok / n >= floor, (weighting, country, off)


def test_weak_answers_of_greece_and_malaysia_agree_with_the_new_shares(sources):
    weak = {}
    for name in ("goqa", "wvs7-means"):
        for c in ("GRC", "MYS"):
            weak.setdefault(c, {}).update({k: v for k, v in sources[name].get(c, {}).items()
                                           if k not in weak.get(c, {})})
    agree = agreement_by_country(weak, sources["wvs7-shares-12"])
    assert agree["GRC"][0] >= 30 and agree["MYS"][0] >= 30
    assert agree["GRC"][2] == [] and agree["MYS"][2] == []


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "middleware", "profiles", "build", *args], capture_output=True,
                          text=True, timeout=300)


def test_weighting_flag_builds_the_other_weighting(shared_data, tmp_path):
    p = _cli("--data-dir", str(shared_data), "--weighting", "weighted", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "weighted and unweighted majorities differ on 6 of 2902" in p.stdout and "built: weighted" in p.stdout
    grc = CountryAnswers.model_validate_json((tmp_path / "GRC.json").read_text())
    assert set(grc.counts_by_source()) == {"wvs7-shares-12-weighted"}
    shipped = load_answers("GRC").answers
    assert {pid for pid, a in grc.answers.items() if a.majority != shipped[pid].majority} == {"Q81", "Q167", "Q210"}
    # countries outside the file are built the same either way
    assert CountryAnswers.model_validate_json((tmp_path / "IDN.json").read_text()) == load_answers("IDN")


def test_weighting_flag_rejects_other_values(tmp_path):
    p = _cli("--data-dir", str(tmp_path), "--weighting", "W_WEIGHT", "--out", str(tmp_path))
    assert p.returncode != 0 and "weighting 'W_WEIGHT'" in p.stderr and "unweighted, weighted" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_a_data_copy_without_the_file_still_builds(shared_data, tmp_path):
    for name in ("wvs7-shares", "wvs7-shares-46", "wvs7-ethics-means", "goqa-sample", "wvs7-meta"):
        (tmp_path / name).symlink_to(shared_data / name)
    parts = build_sources(PROBES, data_dir=tmp_path)
    assert "wvs7-shares-12" not in parts
    built = merge(*parts.values())
    assert set(built["GRC"].counts_by_source()) == {"goqa", "wvs7-means"}  # as before the file
    assert built["ROU"].answers["Q28"].source == "wvs7-shares-46"
