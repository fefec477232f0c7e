"""The alignment options: one declaration, validation naming the field, merging, and every integration reading it."""

from __future__ import annotations

import dataclasses

import pytest

from middleware.errors import SelfAlignError
from middleware.options import (DEFAULT_K, MAX_K, OPTION_NAMES, AlignOptions, header_parameters, json_schema, merge,
                                parse, parse_headers)


def test_defaults_and_off():
    assert AlignOptions().k == DEFAULT_K and AlignOptions().strategy == "chrf"
    assert AlignOptions().off  # neither a country nor a profile
    assert AlignOptions(country=" NONE ").off and AlignOptions(country="off", profile="me").off
    assert not AlignOptions(country="ro").off and not AlignOptions(profile="me").off


@pytest.mark.parametrize("raw,param,words", [
    ({"k": 0}, "selfalign.k", f"from 1 to {MAX_K}"), ({"k": True}, "selfalign.k", "integer"),
    ({"k": "5"}, "selfalign.k", "integer"), ({"country": 7}, "selfalign.country", "must be a string"),
    ({"strategy": "best"}, "selfalign.strategy", "chrf-category"), ({"colour": "x"}, "selfalign", "colour"),
    ("ro", "selfalign", "must be an object")])
def test_parse_errors_name_the_field(raw, param, words):
    with pytest.raises(SelfAlignError) as e:
        parse(raw, "selfalign")
    assert e.value.param == param and words in str(e.value)


def test_python_construction_validates_too():
    with pytest.raises(SelfAlignError, match="k must be an integer from 1 to 100") as e:
        AlignOptions(k=101)
    assert e.value.param == "k"
    assert AlignOptions(country="  ", strategy=None) == AlignOptions()  # blank means unset


def test_merge_precedence_body_headers_suffix_defaults():
    defaults = {"country": "ro", "language": "en", "k": 3}
    body, headers = parse({"k": 2}, "selfalign"), parse_headers({"X-SelfAlign-Country": "kor"})
    merged = merge(body, headers, {"country": "usa"}, defaults=defaults)
    assert (merged.country, merged.language, merged.k) == ("kor", "en", 2)
    assert merge({}, {}, {"country": "usa"}, defaults=defaults).country == "usa"
    assert merge({}, {}, {}, defaults=defaults).country == "ro"
    # A profile replaces the countries below it; an explicit "none" above a profile still turns alignment off.
    assert merge({"profile": "me"}, {}, {"country": "usa"}, defaults=defaults).country is None
    assert merge({"country": "none"}, {"profile": "me"}, defaults=defaults).off
    assert parse_headers({"x-selfalign-language": " de "}) == {"language": "de"}


def test_json_schema_is_generated_from_the_fields():
    schema = json_schema()
    assert tuple(schema["properties"]) == OPTION_NAMES and schema["additionalProperties"] is False
    assert schema["properties"]["k"] == {"type": "integer", "minimum": 1, "maximum": MAX_K,
                                         "description": "Number of demonstrations."}
    from middleware.server.schema import CHAT_REQUEST, SELFALIGN_OPTIONS

    assert SELFALIGN_OPTIONS == schema
    headers = {p["name"] for p in CHAT_REQUEST["parameters"]}
    assert headers == {p["name"] for p in header_parameters()} >= {"X-SelfAlign-Country", "X-SelfAlign-Profile"}


def test_every_integration_takes_every_option():
    """Adding a field to AlignOptions must reach the server config, the wrapper and the callback unchanged."""
    from middleware.integrations import litellm_callback, openai_client
    from middleware.server.config import ServerConfig, _TOP_KEYS

    names = {f.name for f in dataclasses.fields(ServerConfig)}
    assert set(OPTION_NAMES) <= names and set(OPTION_NAMES) <= _TOP_KEYS  # config-file keys too
    assert set(OPTION_NAMES) <= set(openai_client._ACCEPTED)
    meta = {f"selfalign_{name}": value for name, value in
            {"country": "usa", "language": "en", "profile": None, "k": 2, "strategy": "random"}.items()}
    assert litellm_callback._from_mapping(meta, "metadata") == {"country": "usa", "language": "en", "k": 2,
                                                                "strategy": "random"}
    with pytest.raises(SelfAlignError):
        ServerConfig(strategy="best")


def test_min_margin_added_in_options_py_reaches_every_integration():
    """min_margin was added to AlignOptions alone; the schema, parsing, the cache and the aligner follow."""
    from middleware.options import json_schema, parse
    from middleware.retrieval.cache import AlignerCache

    assert json_schema()["properties"]["min_margin"]["type"] == "number"
    with pytest.raises(SelfAlignError, match="selfalign.min_margin"):
        parse({"min_margin": 2}, "selfalign")
    cache = AlignerCache()
    strict = cache.get(cache.key(AlignOptions(country="ro", language="en", min_margin=0.3)))
    loose = cache.get(cache.key(AlignOptions(country="ro", language="en")))
    assert strict.min_margin == 0.3 and loose.min_margin == 0.0
    # A stricter margin leaves out the near-ties, so fewer statements can be demonstrations.
    assert strict._strong(strict.profile).sum() < loose._strong(loose.profile).sum()
