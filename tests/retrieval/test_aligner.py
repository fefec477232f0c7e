import copy

import pytest
from sacrebleu.metrics import CHRF

from middleware import SelfAligner, align
from middleware.errors import NoAnswersError, SelfAlignError, UnknownCountryError, UnknownStrategyError

ORACLE = CHRF(word_order=2)
MSG = "Do you think men make better political leaders than women?"


def _oracle_top(aligner, text, k):
    scores = [ORACLE.sentence_score(text, [s.key]).score for s in aligner.profile.statements]
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return [aligner.profile.statements[i].text for i in order], [scores[i] for i in order]


@pytest.mark.parametrize("country,language", [("us", None), ("de", None), ("ro", "en"), ("KOR", "en")])
def test_chrf_demonstrations_are_sacrebleus_top_k(country, language):
    a = SelfAligner(country=country, language=language)
    demos = a.demonstrations(MSG)
    texts, scores = _oracle_top(a, MSG, 5)
    assert [d.text for d in demos] == texts
    assert [d.score for d in demos] == pytest.approx(scores, abs=1e-9)


def test_demonstration_is_completed_with_the_majority_answer():
    d = SelfAligner(country="us").demonstrations(MSG, )[0]
    assert d.probe_id == "Q29" and d.text == "I disagree that men make better political leaders than women do."


def test_align_adds_system_message_and_is_pure():
    msgs = [{"role": "user", "content": MSG}]
    before = copy.deepcopy(msgs)
    out = SelfAligner(country="us", min_relevance=0).align(msgs)
    assert msgs == before and out is not msgs
    assert out[0]["role"] == "system" and "men make better political leaders" in out[0]["content"]
    assert out[1:] == msgs
    assert out[0]["content"].count("\n- ") == 5


def test_align_merges_with_existing_system_message_string_and_parts():
    a = SelfAligner(country="us")
    out = a.align([{"role": "system", "content": "Be brief."}, {"role": "user", "content": MSG}])
    assert len(out) == 2 and out[0]["content"].endswith("\n\nBe brief.") and "- I disagree" in out[0]["content"]
    parts = [{"type": "text", "text": "Be brief."}]
    out = a.align([{"role": "system", "content": parts}, {"role": "user", "content": [{"type": "text", "text": MSG}]}])
    assert out[0]["content"][1:] == parts and "- I disagree" in out[0]["content"][0]["text"]


def test_query_is_the_last_user_message():
    a = SelfAligner(country="us", k=1)
    out = a.align([{"role": "user", "content": MSG}, {"role": "assistant", "content": "ok"},
                   {"role": "user", "content": "And what about abortion, is it ever justifiable?"}])
    assert "Abortion is" in out[0]["content"]
    # Six words or fewer after earlier user turns are a follow-up, read with those turns (test_relevance.py).
    out = a.align([{"role": "user", "content": MSG}, {"role": "assistant", "content": "ok"},
                   {"role": "user", "content": "Are you sure?"}])
    assert "political leaders" in out[0]["content"]


def test_nothing_to_align_returns_an_unchanged_copy():
    a = SelfAligner(country="us")
    for msgs in ([], [{"role": "system", "content": "x"}], [{"role": "user", "content": "   "}]):
        assert a.align(msgs) == msgs


def test_category_strategy_stays_in_the_best_matchs_category():
    a = SelfAligner(country="us", strategy="chrf-category")
    demos = a.demonstrations(MSG)
    best = SelfAligner(country="us", k=1).demonstrations(MSG)[0]
    assert len(demos) == 5 and {d.category for d in demos} == {best.category}


def test_random_strategies_are_seedable():
    one = [d.text for d in SelfAligner(country="us", strategy="random", seed=7).demonstrations(MSG)]
    two = [d.text for d in SelfAligner(country="us", strategy="random", seed=7).demonstrations(MSG)]
    three = [d.text for d in SelfAligner(country="us", strategy="random", seed=8).demonstrations(MSG)]
    assert one == two and one != three and len(set(one)) == 5
    rc = SelfAligner(country="us", strategy="random-category", seed=1).demonstrations(MSG)
    assert len({d.category for d in rc}) == 1


def test_exclude_drops_the_test_probe():
    demos = SelfAligner(country="us").demonstrations(MSG, exclude=["Q29"])
    assert "Q29" not in [d.probe_id for d in demos] and len(demos) == 5


def test_bad_settings_raise_clear_errors():
    with pytest.raises(UnknownCountryError):
        SelfAligner(country="narnia")
    with pytest.raises(UnknownStrategyError, match="chrf-category"):
        SelfAligner(country="us", strategy="best")
    with pytest.raises(SelfAlignError, match="k must be"):
        SelfAligner(country="us", k=0)
    with pytest.raises(NoAnswersError, match="USA"):
        SelfAligner(country="Greenland")
    with pytest.raises(SelfAlignError, match="messages"):
        SelfAligner(country="us").align("hello")


def test_function_form_matches_the_class():
    msgs = [{"role": "user", "content": MSG}]
    assert align(msgs, country="de") == SelfAligner(country="de").align(msgs)
