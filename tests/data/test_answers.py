"""Country answers: loading, provenance, the atomic file format, and re-orienting answers for mirrored probes."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from middleware.data.answers import CountryAnswer, CountryAnswers, answer_for, available_countries, load_answers
from middleware.data.countries import resolve_country
from middleware.data.probes import load_probes


def test_a_country_loads_by_code_or_name_with_valid_shares():
    by_code, by_name = load_answers("ro"), load_answers("Romania")
    assert by_code is by_name and by_code.country == "ROU" and len(by_code.answers) > 100
    for a in by_code.answers.values():
        assert a.majority in (0, 1) and a.source
        if a.shares is not None:
            assert a.shares[a.majority] >= a.shares[1 - a.majority] and 0 <= a.margin <= 1


def test_a_country_without_a_file_has_no_answers(tmp_path):
    empty = load_answers("ro", directory=tmp_path)
    assert empty.country == "ROU" and empty.answers == {} and available_countries(tmp_path) == []


def test_shares_must_sum_to_one_and_means_have_none():
    with pytest.raises(ValidationError, match="sum to 1"):
        CountryAnswer(majority=0, shares=(0.5, 0.6), source="x")
    with pytest.raises(ValidationError, match="no shares"):
        CountryAnswer(majority=0, shares=(0.5, 0.5), source="x", derived_from="mean")
    assert CountryAnswer(majority=1, source="wvs7-means", derived_from="mean").margin is None
    assert CountryAnswer(majority=0, shares=(0.75, 0.25), source="x").margin == pytest.approx(0.5)


def test_saved_answers_load_back_the_same_one_per_line(tmp_path):
    c = resolve_country("ro")
    answers = CountryAnswers(country=c.alpha3, name=c.name, answers={
        "Q10": CountryAnswer(majority=1, shares=(0.4, 0.6), source="wvs7-shares", rule="r", n=1200.0),
        "Q2": CountryAnswer(majority=0, source="wvs7-means", derived_from="mean")})
    path = answers.save(tmp_path)
    lines = path.read_text().splitlines()
    assert lines[1].startswith('  "Q2"') and lines[2].startswith('  "Q10"')  # numeric order, one per line
    assert json.loads(path.read_text())["answers"]["Q10"]["n"] == 1200.0
    assert load_answers("ro", directory=tmp_path) == answers
    assert answers.counts_by_source() == {"wvs7-shares": 1, "wvs7-means": 1}


def test_a_probe_with_its_options_mirrored_gets_the_answer_mirrored():
    probe = next(p for p in load_probes("en") if p.codes is not None and p.wvs_id in load_answers("ro").answers)
    answers = load_answers("ro")
    same = answer_for(probe, answers)
    mirrored = probe.model_copy(update={"codes": probe.codes[::-1], "options": probe.options[::-1]})
    flipped = answer_for(mirrored, answers)
    assert flipped.majority == 1 - same.majority and "reverse order" in flipped.rule
    if same.shares is not None:
        assert flipped.shares == same.shares[::-1]
    assert mirrored.fill(flipped.majority) == probe.fill(same.majority)  # the same statement either way
    other = probe.model_copy(update={"codes": ((99,), (98,))})
    assert answer_for(other, answers) is None  # another code mapping: no answer rather than a wrong one
