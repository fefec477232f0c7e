"""Every exception selfalign raises on bad input, in one place.

All derive from :class:`SelfAlignError` (a ``ValueError``), so callers can catch one
type; the CLI turns them into a one-line message and exit code 2, the proxy into an
OpenAI-shaped 400.
"""

__all__ = [
    "SelfAlignError",
    "UnknownCountryError",
    "UnknownLanguageError",
    "UnknownStrategyError",
    "ProfileError",
    "NoAnswersError",
]


class SelfAlignError(ValueError):
    """Base class: bad input a user can fix. ``param`` names the offending field."""

    param: str | None = None

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        if param is not None:
            self.param = param


class UnknownCountryError(SelfAlignError):
    param = "country"


class UnknownLanguageError(SelfAlignError):
    param = "language"


class UnknownStrategyError(SelfAlignError):
    param = "strategy"


class ProfileError(SelfAlignError):
    """A value-profile file (or a registered profile name) is invalid or unknown."""

    param = "profile"


class NoAnswersError(SelfAlignError):
    """The country has no survey answers for the requested language's probes."""

    param = "country"
