"""Turn a sampled free-text response into option 1, option 2 or invalid.

Matching is deliberately conservative: an answer that names both options (e.g. the model
echoing "important / not important") is invalid rather than guessed. Rules, in order:

1. Only the first non-empty line counts (chat models explain themselves after it), after
   Unicode NFKC, case folding, dropping punctuation and a leading "Answer:" label, and
   expanding English contractions ("wouldn't" -> "would not").
2. Exact: each option is looked for as a whole-word phrase. A match inside a match of the
   other, longer option is ignored ("important" in "not important").
3. Inflected: only when nothing matched exactly, words match when they share a long common
   prefix ("agrees" ~ "agree", "wichtige" ~ "wichtig", "önemli değil" ~ "önemli değildir").
4. A match right after a negator ("not important" when the options are "important" /
   "unimportant") is not that option.
5. Exactly one option matched -> that option; none or both -> invalid (None).
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Sequence

__all__ = ["parse_answer", "normalize", "words_match", "NEGATORS"]

# Words that flip a following option; options that start with one are matched whole first.
NEGATORS = frozenset({"not", "no", "never", "nicht", "kein", "keine", "tidak", "bukan", "nu", "δεν", "không"})

_CONTRACTIONS = [(re.compile(r"\bcan['’]t\b"), "cannot"), (re.compile(r"\bwon['’]t\b"), "will not"),
                 (re.compile(r"\bshan['’]t\b"), "shall not"), (re.compile(r"n['’]t\b"), " not")]
_LABEL = re.compile(r"^\s*(?:the\s+)?(?:answer|response|option|antwort|jawaban|cevap)\s*(?:is)?\s*[:\-–]\s*")
_WORD = re.compile(r"\w+", re.UNICODE)


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    return text


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def words_match(a: str, b: str) -> bool:
    """Same word, or two inflections of one stem (a common prefix of at least 3 characters and 75% of the shorter)."""
    if a == b:
        return True
    n = min(len(a), len(b))
    if n < 3:
        return False
    common = 0
    for x, y in zip(a, b):
        if x != y:
            break
        common += 1
    return common >= max(3, math.ceil(0.75 * n))


def _spans(words: list[str], option: list[str], fuzzy: bool) -> list[tuple[int, int]]:
    k = len(option)
    out = []
    for i in range(len(words) - k + 1):
        window = words[i:i + k]
        if (window == option) if not fuzzy else all(words_match(w, o) for w, o in zip(window, option)):
            out.append((i, i + k))
    return out


def _find(words: list[str], options: list[list[str]], fuzzy: bool) -> set[int]:
    spans = [_spans(words, o, fuzzy) for o in options]
    found = set()
    for i, own in enumerate(spans):
        others = [s for j, ss in enumerate(spans) if j != i for s in ss]
        for start, end in own:
            # A match inside the other option's (longer) match is part of that option.
            if any(s <= start and end <= e and (e - s) > (end - start) for s, e in others):
                continue
            if start > 0 and words[start - 1] in NEGATORS and options[i][0] not in NEGATORS:
                continue
            found.add(i)
    return found


def parse_answer(text: str | None, options: Sequence[str]) -> int | None:
    """Index of the option ``text`` answers (0 or 1), or None when it names neither or both."""
    if not text:
        return None
    lines = [ln for ln in normalize(text).splitlines() if _words(ln)]
    if not lines:
        return None
    line = _LABEL.sub("", lines[0])
    words = _words(line)
    opts = [_words(normalize(o)) for o in options]
    if not words or not all(opts):
        return None
    for fuzzy in (False, True):
        found = _find(words, opts, fuzzy)
        if len(found) == 1:
            return found.pop()
        if found:
            return None
    return None
