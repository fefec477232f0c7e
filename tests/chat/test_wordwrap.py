"""WordWrap: streamed text broken only between words, at the width of the moment."""

import random

import pytest

from middleware.chat.render import WordWrap

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
