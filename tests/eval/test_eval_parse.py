"""Free-text answers -> option 1, option 2 or invalid (middleware.eval.parse)."""

import pytest

from middleware.eval.parse import parse_answer, words_match


@pytest.mark.parametrize("text,options,expected", [
    # exact, case and punctuation
    ("important", ("important", "not important"), 0),
    (" Important.", ("important", "not important"), 0),
    ("NOT IMPORTANT!", ("important", "not important"), 1),
    ('"not important"', ("important", "not important"), 1),
    ("**Agree**", ("agree", "disagree"), 0),
    ("Answer: disagree", ("agree", "disagree"), 1),
    ("The answer is: never.", ("often", "never"), 1),
    ("important\nStatement: Friends are not important", ("important", "not important"), 0),
    # inflected forms and contractions
    ("agrees", ("agree", "disagree"), 0),
    ("I disagreed", ("agree", "disagree"), 1),
    ("importance", ("important", "not important"), 0),
    ("wouldn't", ("would", "would not"), 1),
    ("can't", ("can", "cannot"), 1),
    ("cannot", ("can", "cannot"), 1),
    ("wichtige", ("wichtig", "unwichtig"), 0),
    ("önemli değil", ("önemlidir", "önemli değildir"), 1),
    ("önemli", ("önemlidir", "önemli değildir"), 0),
    ("Tidak penting", ("penting", "tidak penting"), 1),
    ("중요합니다.", ("중요합니다", "중요하지 않습니다"), 0),
    ("follow religious norms", ("follow religious norms and ceremonies", "do good to other people"), None),
    # a negated option is not that option
    ("not important", ("important", "unimportant"), None),
    # invalid: neither, both, empty
    ("robust", ("important", "not important"), None),
    ("important / not important", ("important", "not important"), None),
    ("agree or disagree", ("agree", "disagree"), None),
    ("", ("agree", "disagree"), None),
    ("   \n  ", ("agree", "disagree"), None),
    (None, ("agree", "disagree"), None),
])
def test_parse_answer(text, options, expected):
    assert parse_answer(text, options) == expected


def test_words_match_is_a_stem_rule():
    assert words_match("agree", "agreed") and words_match("important", "importance")
    assert not words_match("agree", "disagree") and not words_match("no", "not")
    assert not words_match("important", "unimportant")
