"""Built-in value profiles: a language's probes completed with a country's majority answers."""

from __future__ import annotations

import pytest

from middleware.data.answers import answer_for, load_answers
from middleware.data.countries import resolve_country
from middleware.data.probes import BLANK, load_probes
from middleware.data.profile import builtin_profile, probe_key
from middleware.errors import NoAnswersError


def test_a_builtin_profile_is_the_answered_probes_completed():
    ro = resolve_country("ro")
    profile = builtin_profile(ro, "en")
    answers = load_answers(ro)
    probes = {p.id: p for p in load_probes("en")}
    answered = [p for p in probes.values() if answer_for(p, answers) is not None]
    assert len(profile) == len(answered) and profile.name == "rou-en" and profile.subject == "people in Romania"
    for s in profile.statements:
        p = probes[s.probe_id]
        a = answer_for(p, answers)
        assert s.text == p.fill(a.majority) and s.margin == a.margin and s.category == p.category
        assert s.key == probe_key(p.template) and BLANK not in s.key


def test_every_country_of_a_language_shares_the_retrieval_keys():
    ro, de = builtin_profile(resolve_country("ro"), "en"), builtin_profile(resolve_country("de"), "en")
    assert ro.shared_keys == de.shared_keys == tuple(probe_key(p.template) for p in load_probes("en"))
    for profile in (ro, de):
        assert [profile.shared_keys[r] for r in profile.shared_rows] == [s.key for s in profile.statements]
    assert builtin_profile(resolve_country("ro"), "en") is ro  # built once


def test_probe_key_drops_the_blank_and_folds_spaces():
    assert probe_key(f"I {BLANK} that  men make better leaders.") == "I that men make better leaders."


def test_a_country_without_answers_is_an_error_listing_those_with(tmp_path, monkeypatch):
    import middleware.data.profile as profile_module

    monkeypatch.setattr(profile_module, "load_answers", lambda country: load_answers(country, directory=tmp_path))
    with pytest.raises(NoAnswersError, match="countries with answers are"):
        builtin_profile.__wrapped__(resolve_country("ro"), "en")
