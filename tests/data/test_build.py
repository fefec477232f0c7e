import csv
import json
import random
from pathlib import Path

import pytest

from middleware.data.answers import CountryAnswers, answer_for, load_answers
from middleware.data.build import build_all, collapse, from_goqa, from_means, from_shares, from_wvs_csv, merge
from middleware.data.probes import load_probes

from conftest import ROOT

EN = {p.id: p for p in load_probes("en")}


def test_collapse_sums_codes_and_drops_the_rest():
    a = collapse(EN["Q33"], {1: 0.1, 2: 0.2, 3: 0.5, 4: 0.1, 5: 0.1}, "test")  # 3 = neither: left out
    assert a.majority == 0 and a.shares == pytest.approx((0.6, 0.4))
    assert collapse(EN["Q33"], {3: 1.0}, "test") is None  # no answer in either option
    assert collapse(EN["Q33"], {1: 0.5, 5: 0.5}, "test") is None  # a tie has no majority


def test_shares_source_matches_raw_figures(shared_data):
    raw = json.loads((shared_data / "wvs7-shares/proportions_group_by_country.json").read_text())
    built = from_shares(shared_data / "wvs7-shares/proportions_group_by_country.json", EN.values())
    for country in ("USA", "DEU"):
        for pid in ("Q28", "Q182", "Q57"):
            p = EN[pid]
            dist = {int(k): v for k, v in raw[country][pid].items()}
            s = [sum(dist.get(c, 0) for c in group) for group in p.codes]
            a = built[country][pid]
            assert a.shares[0] == pytest.approx(s[0] / sum(s)) and a.majority == int(s[1] > s[0])
    # The data README's worked example: USA Q28 -> "disagree" (0.798 of all answers; renormalised over the two options).
    q28 = raw["USA"]["Q28"]
    assert built["USA"]["Q28"].majority == 1 and q28["3"] + q28["4"] == pytest.approx(0.798, abs=1e-3)
    assert built["USA"]["Q28"].shares[1] == pytest.approx(0.798 / sum(q28.values()), abs=1e-3)


def test_goqa_matches_agree_with_published_shares(shared_data):
    d = shared_data
    goqa = from_goqa(d / "goqa-sample/eval.json", EN.values(), d / "wvs7-shares/wvs_questions.json",
                     d / "wvs7-meta/codebook.json")
    shares = from_shares(d / "wvs7-shares/proportions_group_by_country.json", EN.values())
    pairs = [(goqa[c][p], shares[c][p]) for c in shares for p in set(goqa.get(c, {})) & set(shares[c])]
    assert len(pairs) > 100
    agree = sum(g.majority == s.majority for g, s in pairs) / len(pairs)
    assert agree >= 0.9, agree
    # every paper country gets some answers from it
    for c in ("ROU", "GRC", "PAK", "IRN", "PHL", "IDN", "MYS", "BGD", "SRB", "TUR", "VNM", "KOR"):
        assert len(goqa[c]) >= 10, c


def test_means_give_sides_without_shares(shared_data):
    means = from_means(shared_data / "wvs7-ethics-means/wvs_w7_mcm.csv", EN.values())
    shares = from_shares(shared_data / "wvs7-shares/proportions_group_by_country.json", EN.values())
    a = means["ROU"]["Q182"]
    assert a.shares is None and a.derived_from == "mean" and a.source == "wvs7-means"
    pairs = [(means[c][p], shares[c][p]) for c in shares if c in means for p in means[c] if p in shares[c]]
    assert sum(m.majority == s.majority for m, s in pairs) / len(pairs) >= 0.9


def test_merge_prefers_shares_over_means(shared_data):
    built = build_all(list(EN.values()), data_dir=shared_data)
    usa = built["USA"].answers
    assert usa["Q182"].source == "wvs7-shares"  # also in the means file, shares win
    assert built["IDN"].answers["Q182"].source == "wvs7-shares-46"  # published shares beat a mean
    assert built["GRC"].answers["Q182"].source == "wvs7-shares-12"  # respondent-level shares beat a mean
    assert built["COL"].answers["Q182"].source == "wvs7-means"


@pytest.fixture(scope="module")
def built(shared_data):
    return build_all(list(EN.values()), data_dir=shared_data)


def test_committed_answers_are_reproducible_from_the_data(built):
    from middleware.data.answers import answers_dir

    committed = {p.stem for p in answers_dir().glob("*.json")}
    assert committed == set(built), "profiles/answers/ holds other countries than a fresh build"
    for country, fresh in built.items():
        assert load_answers(country) == fresh, f"{country}: rerun selfalign profiles build --data-dir ../shared/data"


def test_the_46_country_shares_give_full_profiles(built, shared_data):
    raw = json.loads((shared_data / "wvs7-shares-46/shares.json").read_text())
    # Indonesia is the one paper country the 45-country file still answers (not in wvs7-shares-12)
    answers = built["IDN"].answers
    # (an exact tie, IDN Q60 at 0.5/0.5, has no majority and so no answer)
    in_file = [pid for pid, p in EN.items() if p.codes and p.wvs_id in raw["IDN"]
               and collapse(p, {int(k): v for k, v in raw["IDN"][p.wvs_id].items()}, "x")]
    assert len(in_file) == 169 and set(in_file) <= set(answers)
    assert all(a.source == "wvs7-shares-46" for pid, a in answers.items() if EN[pid].wvs_id in raw["IDN"])
    assert len(answers) == 173
    p, a = EN["Q28"], built["IDN"].answers["Q28"]
    dist = {int(k): v for k, v in raw["IDN"]["Q28"].items()}
    s = [sum(dist.get(c, 0) for c in g) for g in p.codes]
    assert a.shares[0] == pytest.approx(s[0] / sum(s)) and a.majority == int(s[1] > s[0])
    assert a.rule == p.rule()


def test_published_share_files_agree_except_china(shared_data):
    from middleware.data.build import SHARES_FILES, compare_shares

    n, worst, over = compare_shares(shared_data / SHARES_FILES["wvs7-shares"],
                                    shared_data / SHARES_FILES["wvs7-shares-46"])
    assert n >= 1900
    # Only China's figures differ beyond rounding (see docs/profiles.md); the rest agree to 1e-4 (+ rounding).
    assert {c for c, _, d in over if d > 2e-4} == {"CHN"}
    assert worst > 0.1


def test_published_shares_win_in_priority_order(built, shared_data):
    # USA is in both share files: wvs7-shares wins, so its answers are the same as before the second file.
    assert set(built["USA"].counts_by_source()) == {"wvs7-shares"}
    assert built["CHN"].answers["Q10"].source == "wvs7-shares"


def _write_wvs(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["B_COUNTRY_ALPHA", "W_WEIGHT", "Q28", "Q182", "Q94"])
        w.writeheader()
        w.writerows(rows)


def test_respondent_file_gives_weighted_shares(tmp_path):
    rng = random.Random(0)
    rows = []
    for country in ("ROU", "KOR"):
        for _ in range(300):
            rows.append({"B_COUNTRY_ALPHA": country, "W_WEIGHT": round(rng.uniform(0.2, 3), 3),
                         "Q28": rng.choice([1, 2, 3, 4, -1, -2]), "Q182": rng.randint(1, 10),
                         "Q94": rng.choice([0, 1, 2, -5])})
    path = tmp_path / "wvs.csv"
    _write_wvs(path, rows)
    built = from_wvs_csv(path, EN.values())
    for country in ("ROU", "KOR"):
        mine = [r for r in rows if r["B_COUNTRY_ALPHA"] == country]
        for pid in ("Q28", "Q182", "Q94"):
            p = EN[pid]
            w = [sum(r["W_WEIGHT"] for r in mine if int(r[pid]) in g) for g in p.codes]
            a = built[country][pid]
            assert a.source == "wvs" and a.shares[0] == pytest.approx(w[0] / sum(w))
            assert a.majority == int(w[1] > w[0]) and a.n == pytest.approx(sum(w), abs=1e-2)


def test_respondent_file_errors_name_the_problem(tmp_path):
    from middleware.errors import SelfAlignError

    bad = tmp_path / "bad.csv"
    bad.write_text("COUNTRY,Q28\nROU,1\n")
    with pytest.raises(SelfAlignError, match="B_COUNTRY_ALPHA"):
        from_wvs_csv(bad, EN.values())
    bad.write_text("B_COUNTRY_ALPHA,W_WEIGHT,Q28\nROU,1,yes\n")
    with pytest.raises(SelfAlignError, match=r"bad.csv:2: Q28"):
        from_wvs_csv(bad, EN.values())


def test_answers_round_trip_atomically(tmp_path):
    a = merge({"ROU": {"Q28": collapse(EN["Q28"], {1: 0.2, 3: 0.8}, "wvs")}})["ROU"]
    path = a.save(tmp_path)
    assert CountryAnswers.model_validate_json(path.read_text()) == a
    assert not list(tmp_path.glob("*.tmp"))


def test_mirrored_probe_gets_mirrored_answer():
    p = EN["Q121"]
    mirrored = p.model_copy(update={"id": "Q121", "options": p.options[::-1], "codes": p.codes[::-1]})
    usa = load_answers("USA")
    a, b = answer_for(p, usa), answer_for(mirrored, usa)
    assert b.majority == 1 - a.majority and b.shares == a.shares[::-1]
    odd = p.model_copy(update={"codes": ((1,), (2,))})
    assert answer_for(odd, usa) is None  # a different split of the scale is never guessed
