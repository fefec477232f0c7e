"""Which language a chat message is in, so demonstrations can be retrieved and rendered in it.

Detection uses py3langid (langid.py's naive Bayes model, 97 languages, 4.6 MB, pure Python and
numpy) restricted to our 14 probe languages plus widely used others: the restriction both speeds it
up and keeps look-alike languages from winning. Indonesian and Malay share most of their words;
when langid names one of the two, a list of standard lexical differences between them (``apakah``
vs ``adakah``, ``pemerintah`` vs ``kerajaan``, ...) decides if it is not balanced. Serbian written in
Latin script is detected as Serbian (Croatian, Bosnian map to Serbian, our closest probe set) and
turned into Cyrillic, our probes' script, with :func:`serbian_to_cyrillic`. The comparison with
lingua, fastText's lid.176.ftz and an n-gram index over our own probes is in docs/retrieval.md.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

__all__ = ["PROBE_LANGUAGES", "OTHER_LANGUAGES", "detect_language", "serbian_to_cyrillic", "serbian_to_latin",
           "is_latin_serbian"]

PROBE_LANGUAGES = ("en", "ro", "el", "ur", "fa", "tl", "id", "de", "ms", "bn", "sr", "tr", "vi", "ko")
# Languages users commonly write in that we have no probes for: detecting them (rather than forcing
# a message into the closest probe language) is what routes it to cross-lingual retrieval.
OTHER_LANGUAGES = ("fr", "es", "it", "pt", "nl", "pl", "ru", "uk", "ar", "hi", "ja", "zh", "sw", "th", "he",
                   "sv", "cs", "hu", "bg", "ca")
# Varieties whose closest probe set is Serbian's.
_ALIASES = {"hr": "sr", "bs": "sr"}
# Long inputs cost time without changing the verdict.
_MAX_CHARS = 400

# Standard Indonesian / Malay lexical differences (question words, pronouns, common nouns, spelling).
_ID_WORDS = frozenset("apakah kamu bisa saja pemerintah karena uang kantor seberapa sebagian harus menurutmu "
                      "bagaimanakah mengapa dibandingkan sekolah kalian gimana nggak enggak tapi cuma sih".split())
_MS_WORDS = frozenset("adakah anda boleh kerajaan kerana wang pejabat sejauh sebahagian berbanding patutkah "
                      "bolehkah manakah sahaja sentiasa mentadbir sesebuah ramai kerap mesti pendatang "
                      "bahawa baharu".split())
_WORD = re.compile(r"\w+", re.UNICODE)

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE)
    ident.set_languages([c for c in PROBE_LANGUAGES + OTHER_LANGUAGES + tuple(_ALIASES) if c in ident.labels])
    return ident


def _malay_or_indonesian(text: str, guess: str) -> str:
    words = [w.lower() for w in _WORD.findall(text)]
    score = sum(w in _MS_WORDS for w in words) - sum(w in _ID_WORDS for w in words)
    return "ms" if score > 0 else "id" if score < 0 else guess


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text``'s language among :data:`PROBE_LANGUAGES` and :data:`OTHER_LANGUAGES`.

    None when the text has no letters.
    """
    line = " ".join(text[:_MAX_CHARS].split())
    if not any(ch.isalpha() for ch in line):
        return None
    ident = _identifier()
    with _lock:  # the identifier keeps no per-call state, but set_languages elsewhere would race
        code = ident.classify(line)[0]
    code = _ALIASES.get(code, code)
    if code in ("id", "ms"):
        code = _malay_or_indonesian(line, code)
    return code


_LATIN_SR = {"lj": "љ", "nj": "њ", "dž": "џ", "Lj": "Љ", "LJ": "Љ", "Nj": "Њ", "NJ": "Њ", "Dž": "Џ", "DŽ": "Џ",
             "a": "а", "b": "б", "c": "ц", "č": "ч", "ć": "ћ", "d": "д", "đ": "ђ", "e": "е", "f": "ф", "g": "г",
             "h": "х", "i": "и", "j": "ј", "k": "к", "l": "л", "m": "м", "n": "н", "o": "о", "p": "п", "r": "р",
             "s": "с", "š": "ш", "t": "т", "u": "у", "v": "в", "z": "з", "ž": "ж"}
_LATIN_SR.update({k.upper(): v.upper() for k, v in list(_LATIN_SR.items()) if len(k) == 1})
_LATIN_RE = re.compile("|".join(sorted(map(re.escape, _LATIN_SR), key=len, reverse=True)))
_CYR_SR = {v: k for k, v in _LATIN_SR.items() if not (len(k) == 2 and k.isupper())}


def serbian_to_cyrillic(text: str) -> str:
    """Serbian Latin script to Cyrillic (the standard one-to-one mapping; lj/nj/dž are single letters)."""
    return _LATIN_RE.sub(lambda m: _LATIN_SR[m.group()], text)


def serbian_to_latin(text: str) -> str:
    """Serbian Cyrillic to Latin script."""
    return "".join(_CYR_SR.get(ch, ch) for ch in text)


def is_latin_serbian(text: str) -> bool:
    """True when a (Serbian) text has more Latin than Cyrillic letters."""
    latin = sum(1 for ch in text if "a" <= ch.lower() <= "z" or ch in "čćđšžČĆĐŠŽ")
    cyr = sum(1 for ch in text if "\u0400" <= ch <= "\u04ff")
    return latin > cyr
