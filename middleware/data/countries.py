"""Countries and languages: the paper's pairs and tolerant lookup (``ro``, ``ROU``, ``Romania``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pycountry

from ..errors import UnknownCountryError, UnknownLanguageError

__all__ = ["Country", "PAPER_PAIRS", "LANGUAGES", "resolve_country", "resolve_language"]


@dataclass(frozen=True)
class Country:
    alpha2: str
    alpha3: str
    name: str

    def __str__(self) -> str:
        return f"{self.name} ({self.alpha3})"


# Language -> country of Choenni & Shutova (2024), in the paper's order.
PAPER_PAIRS: dict[str, str] = {
    "en": "USA", "ro": "ROU", "el": "GRC", "ur": "PAK", "fa": "IRN", "tl": "PHL", "id": "IDN",
    "de": "DEU", "ms": "MYS", "bn": "BGD", "sr": "SRB", "tr": "TUR", "vi": "VNM", "ko": "KOR",
}

LANGUAGES: dict[str, str] = {
    "en": "English", "ro": "Romanian", "el": "Greek", "ur": "Urdu", "fa": "Persian", "tl": "Tagalog",
    "id": "Indonesian", "de": "German", "ms": "Malay", "bn": "Bengali", "sr": "Serbian", "tr": "Turkish",
    "vi": "Vietnamese", "ko": "Korean",
}
_LANGUAGE_ALIASES = {"fil": "tl", "filipino": "tl", "farsi": "fa", "bangla": "bn", "eng": "en", "deu": "de",
                     "ger": "de", "ron": "ro", "rum": "ro", "ell": "el", "gre": "el", "urd": "ur", "fas": "fa",
                     "per": "fa", "tgl": "tl", "ind": "id", "msa": "ms", "may": "ms", "zsm": "ms", "ben": "bn",
                     "srp": "sr", "tur": "tr", "vie": "vi", "kor": "ko"}

# Names used by the survey sources that pycountry does not know.
_COUNTRY_ALIASES = {
    "south korea": "KOR", "s. korea": "KOR", "korea": "KOR", "north korea": "PRK", "russia": "RUS",
    "iran": "IRN", "vietnam": "VNM", "turkey": "TUR", "britain": "GBR", "great britain": "GBR",
    "uk": "GBR", "united kingdom": "GBR", "usa": "USA", "us": "USA", "united states": "USA",
    "america": "USA", "united states of america": "USA", "czech rep.": "CZE", "czech republic": "CZE",
    "palest. ter.": "PSE", "palestine": "PSE", "s. africa": "ZAF", "bosnia herzegovina": "BIH",
    "taiwan": "TWN", "taiwan roc": "TWN", "hong kong sar": "HKG", "hong kong": "HKG", "macau sar": "MAC",
    "macau": "MAC", "ivory coast": "CIV", "bolivia": "BOL", "venezuela": "VEN", "tanzania": "TZA",
    "moldova": "MDA", "syria": "SYR", "laos": "LAO", "kosovo": "XKX", "northern ireland": "NIR",
}
_EXTRA = {"XKX": Country("XK", "XKX", "Kosovo"), "NIR": Country("GB", "NIR", "Northern Ireland")}


def _clean(text: str) -> str:
    # Source files add sample notes: "India (Current national sample)".
    return re.sub(r"\s*\(.*?\)\s*$", "", text.strip()).lower()


@lru_cache(maxsize=1024)
def resolve_country(text: str) -> Country:
    """Return the country named by an ISO alpha-2/alpha-3 code or an English name, any case."""
    if not isinstance(text, str) or not text.strip():
        raise UnknownCountryError(_country_message(text))
    key = _clean(text)
    code = _COUNTRY_ALIASES.get(key) or (key.upper() if key.upper() in _EXTRA else None)
    if code in _EXTRA:
        return _EXTRA[code]
    try:
        c = pycountry.countries.lookup(code or key)
    except LookupError:
        raise UnknownCountryError(_country_message(text)) from None
    name = getattr(c, "common_name", None) or c.name
    return Country(c.alpha_2, c.alpha_3, name)


def _country_message(text: object) -> str:
    hint = ""
    if isinstance(text, str) and text.strip().lower() in PAPER_PAIRS:
        lang = text.strip().lower()
        hint = f" ({lang!r} is the language code of {LANGUAGES[lang]}: did you mean {PAPER_PAIRS[lang]}?)"
    pairs = ", ".join(f"{a} ({LANGUAGES[l]})" for l, a in PAPER_PAIRS.items())
    return (f"unknown country {text!r}{hint}: use an ISO code or English name, e.g. ro, ROU or Romania; "
            f"countries with built-in profiles: {pairs}")


def resolve_language(text: str) -> str:
    """Return the two-letter code of one of the 14 supported languages."""
    key = (text or "").strip().lower().replace("_", "-").split("-")[0]
    key = _LANGUAGE_ALIASES.get(key, key)
    if key in LANGUAGES:
        return key
    for code, name in LANGUAGES.items():
        if name.lower() == key:
            return code
    valid = ", ".join(f"{c} ({n})" for c, n in LANGUAGES.items())
    raise UnknownLanguageError(f"unknown language {text!r}: valid languages are {valid}")


def default_language(country: Country) -> str:
    """The paper's language for a paper country, English for every other country."""
    for lang, alpha3 in PAPER_PAIRS.items():
        if alpha3 == country.alpha3:
            return lang
    return "en"
