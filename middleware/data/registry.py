"""Value profiles registered by name: what requests may choose (a name), never a path."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..errors import ProfileError
from .profile import ValueProfile

__all__ = ["ProfileRegistry"]


class ProfileRegistry:
    """Profiles loaded at start-up and looked up by name; ``hint`` says where names are registered."""

    def __init__(self, files: Mapping[str, str | Path] | None = None, hint: str = ""):
        self._profiles: dict[str, ValueProfile] = {}
        self.hint = hint
        for name, path in (files or {}).items():
            self.register(name, path)

    def register(self, name: str, source: ValueProfile | str | Path) -> ValueProfile:
        if isinstance(source, ValueProfile):
            profile = source
        else:
            from .user_profile import load_user_profile

            profile = load_user_profile(source)
        self._profiles[name] = profile
        return profile

    def get(self, name: str) -> ValueProfile:
        try:
            return self._profiles[name]
        except KeyError:
            if self._profiles:
                valid = f"registered profiles are {', '.join(sorted(self._profiles))}"
            else:
                valid = "no profiles are registered" + (f" ({self.hint})" if self.hint else "")
            raise ProfileError(f"unknown profile {name!r}: {valid}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def describe(self) -> list[dict]:
        return [{"id": name, "object": "selfalign.profile", "language": p.language, "statements": len(p),
                 "description": p.description} for name, p in sorted(self._profiles.items())]
