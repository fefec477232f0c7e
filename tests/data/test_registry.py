"""Profiles registered by name: what requests may choose (a name, never a path)."""

from __future__ import annotations

import pytest
import yaml

from middleware.data.registry import ProfileRegistry
from middleware.errors import ProfileError


@pytest.fixture()
def profile_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "statements": [{"text": "Family comes first."},
                                                                   {"text": "Work is a duty."}]}))
    return path


def test_registered_files_are_loaded_and_described(profile_file):
    registry = ProfileRegistry({"me": profile_file})
    assert "me" in registry and "mine" not in registry
    profile = registry.get("me")
    assert [s.text for s in profile.statements] == ["Family comes first.", "Work is a duty."]
    assert registry.describe() == [{"id": "me", "object": "selfalign.profile", "language": "en", "statements": 2,
                                    "description": profile.description}]


def test_an_unknown_name_lists_the_registered_ones(profile_file):
    registry = ProfileRegistry({"me": profile_file, "you": profile_file})
    with pytest.raises(ProfileError, match="registered profiles are me, you") as e:
        registry.get(str(profile_file))  # a path is never looked up as a file
    assert e.value.param == "profile"


def test_an_empty_registry_says_where_profiles_are_registered():
    with pytest.raises(ProfileError, match=r"no profiles are registered \(give --config\)"):
        ProfileRegistry(hint="give --config").get("me")


def test_a_profile_object_registers_as_it_is(profile_file):
    first = ProfileRegistry({"me": profile_file}).get("me")
    registry = ProfileRegistry()
    assert registry.register("copy", first) is first and registry.get("copy") is first


def test_a_bad_file_fails_at_registration(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("statements: 3\n")
    with pytest.raises(ProfileError):
        ProfileRegistry({"bad": bad})
