"""The chat's rendering of answers: WordWrap (streamed text broken only between words, at the width of the
moment) and whole_sentences (no half sentence at the token limit)."""

import random

import pytest

from middleware.chat.render import WordWrap, sentence_end, whole_sentences

TEXT = ("Individual perspectives on work differ: some see it as a duty towards society, "
        "others as a way to earn a living.\nBoth views are common.\n  - an indented item\n"
        "Rare words are rare.")


def wrapped(text, width, column=0, pieces=None):
    out = []
    w = WordWrap(out.append, lambda: width() if callable(width) else width, column)
    for piece in pieces or [text]:
        w.feed(piece)
    w.finish()
    return "".join(out)


def lines_of(shown, column=0):
    lines = shown.split("\n")
    return [" " * column + lines[0]] + lines[1:]


@pytest.mark.parametrize("width", [12, 20, 40, 77])
def test_no_line_is_wider_than_the_terminal_and_no_word_is_cut(width):
    # Random chunking, as tokens arrive: the result must not depend on where deltas split.
    rng = random.Random(width)
    cuts = sorted(rng.sample(range(1, len(TEXT)), 40))
    pieces = [TEXT[a:b] for a, b in zip([0, *cuts], [*cuts, len(TEXT)])]
    shown = wrapped(TEXT, width, column=11, pieces=pieces)
    assert shown == wrapped(TEXT, width, column=11)
    assert all(len(line) <= width for line in lines_of(shown, 11)), shown
    assert shown.split() == TEXT.split()  # the same words, none cut


def test_only_a_word_wider_than_the_line_is_cut_at_the_edge():
    assert wrapped("a Supercalifragilistic b", 10) == "a\nSupercalif\nragilistic\nb"


def test_hard_newlines_and_indentation_are_kept():
    shown = wrapped(TEXT, 40)
    assert "\nBoth views are common.\n  - an indented item\n" in shown


def test_a_soft_break_drops_the_space_before_the_word():
    assert wrapped("aaa bbb ccc", 7) == "aaa bbb\nccc"
    assert wrapped("aaa bbb ccc", 8) == "aaa bbb\nccc"
    assert wrapped("aaa  bbb", 20) == "aaa  bbb"


def test_a_word_is_held_back_until_it_is_complete():
    out = []
    w = WordWrap(out.append, lambda: 10)
    w.feed("hello wor")
    assert "".join(out) == "hello"
    w.feed("ld")
    assert "".join(out) == "hello"
    w.finish()
    assert "".join(out) == "hello\nworld"


def test_a_resize_applies_from_the_next_word():
    width = [40]
    out = []
    w = WordWrap(out.append, lambda: width[0])
    w.feed("one two three four five six seven ")
    width[0] = 10
    w.feed("eight nine ten eleven twelve")
    w.finish()
    shown = "".join(out)
    first, *rest = shown.split("\n")
    assert first == "one two three four five six seven"  # the cursor was past the new edge: a new line
    assert all(len(line) <= 10 for line in rest) and " ".join(rest).split() == "eight nine ten eleven twelve".split()


def test_wide_characters_count_two_cells():
    shown = wrapped("日本語 日本語 日本語", 13)
    assert shown == "日本語 日本語\n日本語"


def tokens(text, reason):
    """``text`` as one delta per word, the last with ``reason``, counting one token per word."""
    words = text.split(" ")
    return [(w if i == 0 else " " + w, reason if i == len(words) - 1 else None, i + 1) for i, w in enumerate(words)]


ANSWER = "Work matters to many people. It gives them structure and meaning. However, some argue that the"


def test_an_answer_cut_by_the_limit_ends_at_its_last_whole_sentence():
    deltas = tokens(ANSWER, "length")  # 16 words, one token each; the last stretch is 8 tokens
    assert "".join(whole_sentences(deltas, max_tokens=16, margin=8)) == \
        "Work matters to many people. It gives them structure and meaning."


def test_a_half_sentence_already_on_screen_is_shown_to_its_end():
    deltas = tokens(ANSWER, "length")
    assert "".join(whole_sentences(deltas, max_tokens=16, margin=2)) == ANSWER


def test_an_answer_that_ended_by_itself_is_shown_whole():
    deltas = tokens(ANSWER, "stop")
    assert "".join(whole_sentences(deltas, max_tokens=17, margin=8)) == ANSWER


def test_text_streams_as_it_comes_until_the_last_stretch():
    deltas = tokens(ANSWER, "length")
    seen = []
    stream = whole_sentences(iter(deltas), max_tokens=17, margin=8)
    for piece in stream:
        seen.append(piece)
        if len(seen) == 3:
            break
    assert seen == ["Work", " matters", " to"]  # token by token, far from the limit


def test_an_answer_without_any_sentence_end_is_kept():
    deltas = tokens("one two three four", "length")
    assert "".join(whole_sentences(deltas, max_tokens=4, margin=8)) == "one two three four"


@pytest.mark.parametrize("text, end", [("Yes. No", 4), ("He said \"stop!\" and", 15), ("3.14 is pi", 0),
                                       ("a list:\n- one", 8), ("Done.", 5), ("", 0)])
def test_sentence_end(text, end):
    assert sentence_end(text) == end
