"""The OpenAI parameters an embedded (``local/``) model is given, checked before it runs.

A hosted upstream validates its own parameters; the embedded model is this process, so the proxy does
it: a wrong type or range is a 400 naming the parameter (not a 502 carrying a Python error, which
SDKs retry), and one request may not ask for more generation than :data:`MAX_CHOICES` answers and
:data:`TOKEN_BUDGET` tokens in all (``n=100000`` would otherwise keep a core busy until the timeout).
"""

from __future__ import annotations

from typing import Any

from ..models.inprocess import DEFAULT_MAX_TOKENS
from ._text import clip
from .errors import bad_request

__all__ = ["check_local_params", "MAX_CHOICES", "TOKEN_BUDGET", "DEFAULT_MAX_TOKENS"]

MAX_CHOICES = 8
"""Largest ``n``."""
TOKEN_BUDGET = 8192
"""Most tokens one request may have generated: ``n`` times ``max_tokens``."""
MAX_STOPS = 4

# name: (lowest, highest) for numbers OpenAI documents with a range
_RANGES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "frequency_penalty": (-2.0, 2.0),
           "presence_penalty": (-2.0, 2.0)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_local_params(body: dict, min_tokens: int = 1) -> None:
    """Raise a 400 (with ``param``) for the first OpenAI parameter an embedded model cannot take as given.
    ``min_tokens``: the fewest tokens a request may ask for (0 for a text completion that only scores its prompt)."""
    n = body.get("n")
    if n is not None and not (_is_int(n) and 1 <= n <= MAX_CHOICES):
        raise bad_request(f"n must be an integer from 1 to {MAX_CHOICES} for the embedded models, got {clip(n)}",
                          param="n")
    for name, (low, high) in _RANGES.items():
        value = body.get(name)
        if value is not None and not (_is_number(value) and low <= value <= high):
            raise bad_request(f"{name} must be a number from {low:g} to {high:g}, got {clip(value)}", param=name)
    tokens = None
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None:
            if not (_is_int(value) and value >= min_tokens):
                what = "a positive integer" if min_tokens == 1 else f"an integer of at least {min_tokens}"
                raise bad_request(f"{name} must be {what}, got {clip(value)}", param=name)
            tokens = value if tokens is None else min(tokens, value)
    choices = n or 1
    if choices * (tokens or DEFAULT_MAX_TOKENS) > TOKEN_BUDGET:
        param = "max_tokens" if choices == 1 else "n"
        raise bad_request(f"this request asks the embedded model for n x max_tokens = {choices} x "
                          f"{tokens or DEFAULT_MAX_TOKENS} tokens; one request may generate at most {TOKEN_BUDGET}",
                          param=param)
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not (isinstance(stops, list) and len(stops) <= MAX_STOPS and all(isinstance(s, str) and s for s in stops)):
            raise bad_request(f"stop must be a non-empty string or a list of up to {MAX_STOPS} of them, got "
                              f"{clip(stop)}", param="stop")
    seed = body.get("seed")
    if seed is not None and not (_is_int(seed) and -2**63 <= seed < 2**64):
        raise bad_request(f"seed must be a 64-bit integer, got {clip(seed)}", param="seed")
