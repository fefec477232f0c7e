"""Demonstration selection strategies of the paper, as plugins of one small interface.

A strategy picks up to ``k`` statement indices for a query. Built-ins register the same
way a third party would::

    @register_strategy("my-strategy")
    def select(profile, query, k, rng, allowed, scores): ...
"""

from __future__ import annotations

import random
from typing import Callable, Protocol

import numpy as np

from ..errors import UnknownStrategyError

__all__ = ["Strategy", "register_strategy", "get_strategy", "STRATEGIES"]


class Strategy(Protocol):
    def __call__(self, categories: list[str], query: str, k: int, rng: random.Random,
                 allowed: np.ndarray, scores: np.ndarray) -> list[int]:
        """Return up to k indices among ``allowed`` (a boolean mask), best first.

        ``scores`` holds the chrF++ score of every statement against the query.
        """


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str) -> Callable[[Strategy], Strategy]:
    """Decorator: make ``fn`` selectable as ``strategy=name`` (in SelfAligner, the proxy, the CLI)."""
    def deco(fn: Strategy) -> Strategy:
        STRATEGIES[name] = fn
        return fn
    return deco


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategyError(f"unknown strategy {name!r}: valid strategies are {', '.join(STRATEGIES)}") from None


def _ranked(scores: np.ndarray, mask: np.ndarray, k: int) -> list[int]:
    idx = np.flatnonzero(mask)
    # Stable sort on -score keeps statement order among ties.
    order = np.argsort(-scores[idx], kind="stable")
    return idx[order[:k]].tolist()


def _query_category(categories: list[str], scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Mask of statements in the category of the query's best chrF++ match."""
    best = _ranked(scores, allowed, 1)
    if not best:
        return allowed
    cat = categories[best[0]]
    return allowed & np.array([c == cat for c in categories], dtype=bool)


@register_strategy("chrf")
def chrf(categories, query, k, rng, allowed, scores):
    return _ranked(scores, allowed, k)


@register_strategy("chrf-category")
def chrf_category(categories, query, k, rng, allowed, scores):
    return _ranked(scores, _query_category(categories, scores, allowed), k)


@register_strategy("random")
def random_(categories, query, k, rng, allowed, scores):
    idx = np.flatnonzero(allowed).tolist()
    return rng.sample(idx, min(k, len(idx)))


@register_strategy("random-category")
def random_category(categories, query, k, rng, allowed, scores):
    idx = np.flatnonzero(_query_category(categories, scores, allowed)).tolist()
    return rng.sample(idx, min(k, len(idx)))
