"""The reproducibility signature names everything that decides the demonstrations, and nothing else."""

from __future__ import annotations

import dataclasses

import middleware
from middleware.data.profile import ValueProfile
from middleware.retrieval.cache import aligner_for
from middleware.retrieval.signature import data_version, signature

MSG = "Is divorce ever justifiable?"


def fields(sig: str) -> dict[str, str]:
    return dict(part.split(":", 1) for part in sig.split("|"))


def test_the_signature_names_version_options_data_and_metric():
    aligner = aligner_for(country="ro", language="en", k=3, strategy="chrf-category", min_margin=0.1,
                          min_relevance=0.5)
    got = fields(signature(aligner, aligner.demonstrations(MSG)))
    assert got == {"selfalign": middleware.__version__, "strategy": "chrf-category", "k": "3", "lang": "en",
                   "profile": "rou", "data": data_version(aligner.profile), "margin": "0.1", "relevance": "0.5", "chrf": "c6w2b2",
                   "inject": "default"}


def test_auto_language_names_the_language_used():
    aligner = aligner_for(country="ro")
    assert fields(signature(aligner, aligner.demonstrations(MSG)))["lang"] == "auto:en"
    assert fields(signature(aligner))["lang"] == "auto"


def test_the_data_version_follows_the_answers():
    profile = aligner_for(country="ro", language="en").profile
    same = ValueProfile(profile.name, profile.language, list(profile.statements))
    flipped = ValueProfile(profile.name, profile.language,
                           [dataclasses.replace(profile.statements[0], margin=0.5)] + profile.statements[1:])
    assert data_version(same) == data_version(profile) != data_version(flipped)
    assert data_version(profile) != data_version(aligner_for(country="de", language="en").profile)


def test_a_user_profile_is_named_by_its_name():
    profile = aligner_for(country="ro", language="en").profile
    mine = ValueProfile("my-values", "en", list(profile.statements), subject="the user")
    assert fields(signature(aligner_for(profile=mine)))["profile"] == "my-values"


def test_the_injection_format_and_a_custom_header_are_named():
    assert fields(signature(aligner_for(country="ro", format="items")))["inject"] == "items"
    assert fields(signature(aligner_for(country="ro", format="bullets")))["inject"] == "default"
    custom = aligner_for(country="ro", format="items")
    custom = type(custom)(country="ro", format="items", header="Our values:")
    assert fields(signature(custom))["inject"] == "items+custom"
    assert fields(signature(type(custom)(country="ro", header="Our values:")))["inject"] == "custom"
