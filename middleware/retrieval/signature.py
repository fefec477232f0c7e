"""The reproducibility signature: one short string that says what produced a set of demonstrations,
as sacrebleu prints one for a score. Two runs with the same signature inject the same statements.

``selfalign:0.1.0|strategy:chrf|k:5|lang:auto|profile:usa|data:3f2a9c1e|margin:0|relevance:0.8|chrf:c6w2b2|inject:default``

- ``selfalign``: the package version; ``strategy``, ``k``, ``lang`` (``auto``: each message's),
  ``margin`` (min_margin), ``relevance`` (min_relevance, the gate and the floor): the options;
- ``profile``: the country (ISO alpha-3, lower case) or the user profile's name;
- ``data``: the data version, a hash of the statements the profile holds (the probes completed with
  the answers, with their margins), so a rebuilt answer file shows as another version;
- ``chrf``: chrF++'s parameters (character and word n-gram orders, beta);
- ``inject``: how the demonstrations are put into the request: ``default`` (the ``bullets`` format and its
  header), another format's name, ``+custom`` for a custom header, ``paper`` for the evaluator's paper prompt.

Shown by ``selfalign demos`` (``--json``: the ``signature`` key), written to the evaluator's
``results.json`` and report, and sent by the proxy as the ``X-SelfAlign-Signature`` header.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

from .._version import __version__
from ..data.profile import ValueProfile
from .aligner import DEFAULT_HEADER, SelfAligner
from .chrf import BETA, CHAR_ORDER, WORD_ORDER
from .formats import DEFAULT_FORMAT

__all__ = ["signature", "data_version", "HEADER"]

HEADER = "X-SelfAlign-Signature"
"""The proxy's response header that carries the signature."""
CHRF_PARAMS = f"c{CHAR_ORDER}w{WORD_ORDER}b{BETA}"


def data_version(profile: ValueProfile) -> str:
    """8 hex digits of a hash of the profile's statements (text, probe, margin), cached on the profile."""
    held = profile.__dict__.get("_data_version")
    if held is None:
        h = hashlib.sha256()
        for s in profile.statements:
            h.update(f"{s.probe_id}\x1f{s.text}\x1f{s.margin}\x1e".encode())
        held = profile.__dict__["_data_version"] = h.hexdigest()[:8]
    return held


def _number(value: float) -> str:
    return f"{value:g}"


def signature(aligner: SelfAligner, demonstrations: Iterable[Any] = (), injection: str | None = None) -> str:
    """The signature of ``aligner``'s choices; ``demonstrations`` name the language actually used
    (with language auto, the message's). ``injection``: the injection format's name, when not the default."""
    profile = aligner.profile
    builtin = aligner.country is not None and profile.name == f"{aligner.country.alpha3.lower()}-{profile.language}"
    name = aligner.country.alpha3.lower() if builtin else profile.name  # a built-in one is the country's
    languages = sorted({d.language for d in demonstrations if getattr(d, "language", None)})
    lang = aligner.language if aligner.language != "auto" or not languages else f"auto:{'+'.join(languages)}"
    inject = injection or ("default" if aligner.format_name == DEFAULT_FORMAT else aligner.format_name)
    if injection is None and aligner.header != DEFAULT_HEADER:
        inject = "custom" if inject == "default" else f"{inject}+custom"
    parts = [("selfalign", __version__), ("strategy", aligner.strategy_name), ("k", aligner.k), ("lang", lang),
             ("profile", name), ("data", data_version(profile)), ("margin", _number(aligner.min_margin)),
             ("relevance", _number(aligner.min_relevance)),
             ("chrf", CHRF_PARAMS), ("inject", inject)]
    return "|".join(f"{key}:{value}" for key, value in parts)
