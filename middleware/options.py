"""The alignment options (country, language, profile, k, strategy, min_margin, min_relevance, format), declared once for every integration.

Who reads them through this module:

- the proxy (:mod:`middleware.server`): the body's ``selfalign`` object, the ``X-SelfAlign-*`` headers,
  a ``MODEL@country`` suffix, and the server's defaults (:class:`~middleware.server.config.ServerConfig`
  inherits :class:`AlignOptions`, so every option is also a config-file key);
- the proxy's JSON schema (:func:`json_schema`, :func:`header_parameters`);
- the OpenAI wrapper (``wrap_openai(client, **options)`` and per call ``selfalign={...}``);
- the LiteLLM callback (the body's ``selfalign`` object, ``selfalign_<option>`` metadata keys, defaults);
- the command line: every command's alignment flags (name, help, default, bounds, choices) are
  generated from the fields (:mod:`middleware.cli.options`);
- :class:`~middleware.retrieval.aligner.SelfAligner`, which validates its arguments here, and the
  one aligner cache (:mod:`middleware.retrieval.cache`), which builds ``SelfAligner(**options)``:
  every entry point (proxy, callback, wrapper, ``align()``, chat, demos, eval) gets its aligner there.

**Adding an option is one field**: add a field to :class:`AlignOptions` with :func:`option` (its kind,
bounds, description, and whether a header or environment variable may set it). Its name then becomes
a valid key of the proxy's ``selfalign`` object and of its config file, appears in the proxy's JSON
schema, is a flag of every command (``--min-margin`` for ``min_margin``), is accepted by
``wrap_openai`` and by the callback (as ``selfalign_<name>`` in metadata), is validated with errors
naming it, and is merged by the same precedence. The cache passes it to
:class:`~middleware.retrieval.aligner.SelfAligner` as a keyword argument of the same name, which is
where an option takes effect.

Valid values that a higher layer knows (the registered strategies) are provided to this module
(:func:`provide_choices`) rather than imported from it, so this module imports nothing above it.

Precedence, field by field: request body > headers > model suffix > defaults (:func:`merge`).
``country: none`` (or ``off``) turns alignment off; a profile, when given, replaces the country.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping

from .errors import InputError

__all__ = ["AlignOptions", "OFF_VALUES", "MIN_K", "MAX_K", "DEFAULT_K", "DEFAULT_STRATEGY", "DEFAULT_MIN_MARGIN", "DEFAULT_MIN_RELEVANCE",
           "OPTION_NAMES", "HEADER_PREFIX", "option", "option_fields", "provide_choices", "parse", "parse_headers",
           "merge", "json_schema", "header_parameters", "is_off", "env_names", "PYTHON_ONLY"]

OFF_VALUES = frozenset({"none", "off"})
"""Country values that turn alignment off for a request."""
MIN_K, MAX_K = 1, 100
"""Bounds of k: more than 100 demonstrations would bury the user's message."""
DEFAULT_K = 5
"""The paper's number of demonstrations."""
DEFAULT_STRATEGY = "chrf"
# Near-ties are kept by default: leaving out demonstrations below a margin of 0.05 or 0.10 changed
# the evaluator's improved share by one probe of 64 (71.9% -> 73.4%, CI 59-83%) and 1-JSD by 0.01,
# within noise on the embedded model (docs/profiles.md, "Near-ties and min_margin").
DEFAULT_MIN_MARGIN = 0.0
DEFAULT_MIN_RELEVANCE = 0.8
"""The relevance gate's default threshold, chosen on the dev split (middleware.retrieval.relevance)."""
HEADER_PREFIX = "X-SelfAlign-"
PYTHON_ONLY = ("seed",)
"""Aligner arguments that Python callers may pass (the wrapper) but requests may not: not options."""


def option(default: Any = None, *, kind: str = "text", description: str = "", examples: tuple = (),
           minimum: float | None = None, maximum: float | None = None,
           choices: Callable[[], Iterable[str]] | None = None, header: bool = False, env: bool = False,
           flag: str | None = None) -> Any:
    """A field of :class:`AlignOptions`.

    ``kind`` is "text" (a string; blank means unset), "int" or "number" (bounded by minimum/maximum
    when given).
    ``choices`` returns the valid values when asked (a registry plugins may add to; see
    :func:`provided`).
    ``header``: requests may also set it with ``X-SelfAlign-<Name>``; ``env``: the LiteLLM
    callback falls back to ``$SELFALIGN_<NAME>``.
    ``flag``: the command line's short flag (``-k``), where a command has it free; the long flag
    is always ``--<name>`` with dashes.
    """
    meta = {"kind": kind, "description": description, "examples": examples, "minimum": minimum,
            "maximum": maximum, "choices": choices, "header": header, "env": env, "flag": flag}
    return field(default=default, metadata=meta)


_PROVIDED: dict[str, Callable[[], Iterable[str]]] = {}


def provide_choices(name: str, valid: Callable[[], Iterable[str]]) -> None:
    """Say what the valid values of the choices named ``name`` are (the strategy registry does, on import)."""
    _PROVIDED[name] = valid


def provided(name: str) -> Callable[[], Iterable[str]]:
    """``choices`` for :func:`option` that a higher layer provides with :func:`provide_choices`."""
    def valid() -> Iterable[str]:
        if name not in _PROVIDED:  # the package's __init__ imports the registries, so this is a bug
            raise RuntimeError(f"no valid values of {name} were provided")
        return _PROVIDED[name]()

    return valid


@dataclass(frozen=True)
class AlignOptions:
    """One choice of aligner. Constructing it validates every field (errors name the field)."""

    country: str | None = option(kind="text", description="ISO code or English name; 'none' turns injection off.",
                                 examples=("ro", "USA", "none"), header=True, env=True, flag="-c")
    language: str | None = option(kind="text", description="Demonstration language, e.g. en; auto (the default): "
                                  "each message's own.", header=True, env=True, flag="-l")
    profile: str | None = option(kind="text", description="A profile registered at start-up (never a path).",
                                 header=True, flag="-p")
    k: int = option(DEFAULT_K, kind="int", description="Number of demonstrations.", minimum=MIN_K, maximum=MAX_K,
                    flag="-k")
    strategy: str = option(DEFAULT_STRATEGY, kind="text", description="How demonstrations are picked.",
                           choices=provided("strategy"), flag="-s")
    min_margin: float = option(DEFAULT_MIN_MARGIN, kind="number", description="Leave out demonstrations whose majority won by "
                               "less than this share (0.1: a 55/45 split is left out); 0 keeps all.",
                               minimum=0, maximum=0.99)
    min_relevance: float = option(DEFAULT_MIN_RELEVANCE, kind="number", description="Inject only when the message "
                                  "(with its recent user turns) is about values with at least this probability; "
                                  "0 injects into every message (the paper's setting).", minimum=0, maximum=1)
    format: str = option("bullets", kind="text", description="How the statements are written into the request: "
                         "bullets (a header and one bullet each), bullets-native, survey, shares, turns, items.",
                         choices=provided("format"))

    def __post_init__(self) -> None:
        for f in _option_fields(type(self)):
            value = getattr(self, f.name)
            checked = _check(f, value, "", python=True)
            if checked is None:
                checked = f.default
            if checked is not value:
                object.__setattr__(self, f.name, checked)

    def options(self) -> dict[str, Any]:
        """The option values by name (also for a subclass such as ServerConfig: only the options)."""
        return {name: getattr(self, name) for name in OPTION_NAMES}

    def replace(self, **changes: Any) -> "AlignOptions":
        return dataclasses.replace(self, **changes)

    @property
    def off(self) -> bool:
        """True when these options inject nothing: country none/off, or neither a country nor a profile."""
        return is_off(self.country) or (self.country is None and self.profile is None)


def _option_fields(cls: type = AlignOptions) -> list[dataclasses.Field]:
    return [f for f in fields(cls) if "kind" in f.metadata]


def option_fields() -> list[dataclasses.Field]:
    """The option fields of :class:`AlignOptions`, in order; ``metadata`` holds what :func:`option` was given."""
    return _option_fields()


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in _option_fields())
_FIELDS = {f.name: f for f in _option_fields()}


def is_off(country: Any) -> bool:
    return isinstance(country, str) and country.strip().lower() in OFF_VALUES


def _check(f: dataclasses.Field, value: Any, where: str, python: bool = False) -> Any:
    """``value`` normalised for field ``f`` (None: unset), or a SelfAlignError naming ``where`` + the field."""
    if value is None:
        return None
    name = f"{where}{f.name}"
    meta = f.metadata
    if meta["kind"] in ("int", "number"):
        lo, hi = meta["minimum"], meta["maximum"]
        kinds = int if meta["kind"] == "int" else (int, float)
        if (not isinstance(value, kinds) or isinstance(value, bool) or (lo is not None and value < lo)
                or (hi is not None and value > hi)):
            what = "an integer" if meta["kind"] == "int" else "a number"
            bounds = (f" from {lo} to {hi}" if lo is not None and hi is not None else
                      f" of at least {lo}" if lo is not None else f" of at most {hi}" if hi is not None else "")
            raise InputError(f"{name} must be {what}{bounds}", param=name)
        return value
    if isinstance(value, str):
        value = value.strip() or None
        valid = meta["choices"]() if meta["choices"] is not None else None
        if value is not None and valid is not None and value not in valid:
            raise InputError(f"unknown {name} {value!r}: valid values are {', '.join(valid)}", param=name)
        return value
    if python:  # Python callers may pass objects (a Country, a ValueProfile, a Path)
        return value
    raise InputError(f"{name} must be a string", param=name)


def parse(raw: Any, where: str = "selfalign") -> dict[str, Any]:
    """The options set in a request's ``selfalign`` object, validated; unknown keys are an error.

    Errors name the field as ``<where>.<field>`` (param too), so a client knows what to fix.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InputError(f"{where} must be an object with {', '.join(OPTION_NAMES)}", param=where)
    unknown = set(raw) - set(OPTION_NAMES)
    if unknown:
        raise InputError(f"unknown {where} field(s) {', '.join(sorted(map(str, unknown)))}; valid fields are "
                             f"{', '.join(OPTION_NAMES)}", param=where)
    out = {}
    for name, value in raw.items():
        checked = _check(_FIELDS[name], value, f"{where}.")
        if checked is not None:
            out[name] = checked
    return out


def parse_headers(headers: Mapping[str, str]) -> dict[str, Any]:
    """The options set by ``X-SelfAlign-<Name>`` headers (text options marked ``header``)."""
    out = {}
    for f in _option_fields():
        if f.metadata["header"]:
            value = (headers.get(_header_name(f.name)) or headers.get(_header_name(f.name).lower()) or "").strip()
            if value:
                out[f.name] = value
    return out


def _header_name(name: str) -> str:
    return HEADER_PREFIX + "-".join(part.capitalize() for part in name.split("_"))


def merge(*layers: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None) -> AlignOptions:
    """Merge option layers, highest priority first, over ``defaults``; the result is validated.

    Field by field, the first layer that sets a value wins. A layer that names a profile but
    no country hides the countries of the layers below it (the profile replaces them), so a
    request's profile wins over a default country, while a request's ``country: none`` still
    wins over a default profile.
    """
    merged: dict[str, Any] = {}
    stack = [layer or {} for layer in layers] + [{k: v for k, v in (defaults or {}).items() if k in _FIELDS}]
    country_hidden = False
    for layer in stack:
        for name, value in layer.items():
            if value is None or name in merged:
                continue
            if name == "country" and country_hidden:
                continue
            merged[name] = value
        if layer.get("profile") is not None and layer.get("country") is None:
            country_hidden = True
    return AlignOptions(**merged)


def json_schema() -> dict:
    """The JSON schema of the proxy's ``selfalign`` request object, generated from the fields."""
    properties = {}
    for f in _option_fields():
        meta = f.metadata
        prop: dict[str, Any] = {"type": {"int": "integer", "number": "number"}.get(meta["kind"], "string")}
        if meta["minimum"] is not None:
            prop["minimum"] = meta["minimum"]
        if meta["maximum"] is not None:
            prop["maximum"] = meta["maximum"]
        if meta["description"]:
            prop["description"] = meta["description"]
        examples = meta["examples"] or (tuple(meta["choices"]()) if meta["choices"] is not None else ())
        if examples:
            prop["examples"] = list(examples)
        properties[f.name] = prop
    return {"type": "object",
            "description": "Per-request alignment choices (OpenAI SDK: extra_body={'selfalign': {...}}); "
                           "removed before the request is forwarded.",
            "properties": properties, "additionalProperties": False}


def header_parameters() -> list[dict]:
    """OpenAPI header parameters for the options a header may set."""
    return [{"name": _header_name(f.name), "in": "header", "required": False, "schema": {"type": "string"}}
            for f in _option_fields() if f.metadata["header"]]


def env_names() -> Iterable[tuple[str, str]]:
    """(option, environment variable) for the options the LiteLLM callback may read from the environment."""
    return [(f.name, f"SELFALIGN_{f.name.upper()}") for f in _option_fields() if f.metadata["env"]]
