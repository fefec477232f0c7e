"""Every exception selfalign defines, in one tree (a test finds every class in the package and checks it).

::

    SelfAlignError                 catch this to catch them all; ``param`` names what was wrong
    ├── InputError (ValueError)    bad input a user can fix: proxy 400, CLI one line and exit 2
    │   ├── UnknownCountryError
    │   ├── UnknownLanguageError
    │   ├── UnknownStrategyError
    │   ├── ProfileError
    │   ├── NoAnswersError
    │   ├── UnknownModelError      a local/ name that is no embedded model, GGUF file or model folder
    │   └── ConfigError            a bad server setting (option, config file, bind address)
    ├── ModelError (RuntimeError)  a model could not be called: proxy 502, CLI one line
    │   ├── ChatBackendError       ... by ``selfalign chat`` (missing API key, unknown model, provider error)
    │   ├── ModelCallError         ... by the evaluator, for good (after retries)
    │   └── LlamaCppError          ... llama.cpp refused a request (middleware.models.llamacpp)
    ├── PluginError                an installed plugin (entry point) failed to load
    └── ProxyError                 the proxy's answer to a failed request: status, OpenAI error fields
                                   (middleware.server.errors, where it is built)

The CLI turns any of them into one line on stderr and exit code 2; the proxy answers
an OpenAI-shaped error (:func:`middleware.server.errors.from_selfalign`).
"""

__all__ = [
    "SelfAlignError",
    "InputError",
    "UnknownCountryError",
    "UnknownLanguageError",
    "UnknownStrategyError",
    "ProfileError",
    "NoAnswersError",
    "UnknownModelError", "ConfigError",
    "ModelError",
    "ChatBackendError",
    "ModelCallError",
    "PluginError",
    "LlamaCppError",
    "ProxyError",
]


class SelfAlignError(Exception):
    """Base class of every selfalign error. ``param`` names the offending field, when there is one."""

    param: str | None = None

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        if param is not None:
            self.param = param


class InputError(SelfAlignError, ValueError):
    """Bad input a user can fix: the message says what was wrong and how to fix it."""


class UnknownCountryError(InputError):
    """No country by that ISO code or name; the message suggests close matches."""

    param = "country"


class UnknownLanguageError(InputError):
    """Not one of the probe languages; the message lists them."""

    param = "language"


class UnknownStrategyError(InputError):
    """No demonstration strategy registered under that name; the message lists them."""

    param = "strategy"


class ProfileError(InputError):
    """A value-profile file (or a registered profile name) is invalid or unknown."""

    param = "profile"


class NoAnswersError(InputError):
    """The country has no survey answers for the requested language's probes."""

    param = "country"


class UnknownModelError(InputError):
    """A ``local/`` name that is neither embedded, nor a GGUF file, nor a model directory."""

    param = "model"


class ConfigError(InputError):
    """A bad server setting (option, config file, bind address); the CLI prints it as one line."""

    param = "config"


class ModelError(SelfAlignError, RuntimeError):
    """A model or provider could not be called; nothing the input alone could fix."""

    param = "model"


class ChatBackendError(ModelError):
    """The chat's model could not be called (missing API key, unknown model, provider error)."""


class ModelCallError(ModelError):
    """An evaluator model call failed for good (after retries), or cannot give what the mode needs."""


class LlamaCppError(ModelError):
    """llama.cpp refused a request (:mod:`middleware.models.llamacpp`)."""


class PluginError(SelfAlignError):
    """A package installed as a selfalign plugin (an entry point) failed to load; the message names it."""


class ProxyError(SelfAlignError):
    """The proxy's answer to a failed request: HTTP status, OpenAI error fields, extra headers (e.g.
    Retry-After). Built from any failure by :mod:`middleware.server.errors`."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message, param)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        """OpenAI's error JSON."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
