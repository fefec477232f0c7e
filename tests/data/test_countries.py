import pytest

from middleware.data.countries import PAPER_PAIRS, resolve_country, resolve_language
from middleware.errors import UnknownCountryError, UnknownLanguageError


@pytest.mark.parametrize("text", ["ro", "RO", "ROU", "rou", "Romania", "ROMANIA", " romania "])
def test_country_in_any_form(text):
    assert resolve_country(text).alpha3 == "ROU"


@pytest.mark.parametrize("text,alpha3", [("South Korea", "KOR"), ("S. Korea", "KOR"), ("Iran", "IRN"),
                                         ("Vietnam", "VNM"), ("Turkey", "TUR"), ("United States", "USA"),
                                         ("India (Current national sample)", "IND"), ("Britain", "GBR")])
def test_source_spellings(text, alpha3):
    assert resolve_country(text).alpha3 == alpha3


def test_paper_pairs_resolve():
    assert len(PAPER_PAIRS) == 14
    for lang, alpha3 in PAPER_PAIRS.items():
        assert resolve_language(lang) == lang and resolve_country(alpha3).alpha3 == alpha3


@pytest.mark.parametrize("text,code", [("RO", "ro"), ("ron", "ro"), ("Farsi", "fa"), ("fil", "tl"), ("de-DE", "de"),
                                       ("Korean", "ko")])
def test_language_aliases(text, code):
    assert resolve_language(text) == code


def test_unknown_country_and_language_list_valid_codes():
    with pytest.raises(UnknownCountryError, match="ROU \\(Romanian\\)"):
        resolve_country("Atlantis")
    with pytest.raises(UnknownLanguageError, match="ro \\(Romanian\\)"):
        resolve_language("xx")
