"""Demonstration selection strategies of the paper, as plugins of one small interface.

A strategy picks up to ``k`` statement indices for a query. Built-ins register the same
way a third party would::

    @register_strategy("my-strategy")
    def select(categories, query, k, rng, allowed, scores): ...

``scores`` come from the strategy's *scorer*: ``"chrf"`` (chrF++, the paper's), ``"semantic"``
(multilingual sentence embeddings, works across languages) or ``"hybrid"`` (reciprocal rank fusion
of the two). A strategy may also carry an *instruction*, a fixed system prompt with a ``{country}``
slot put before the demonstrations (cultural prompting, Tao et al. 2024).

Plugins, as in simonw/llm: another installed package makes its strategies usable by name
everywhere (the proxy, ``selfalign chat``, ``demos``, ``eval``, Python) by declaring an entry
point in the ``selfalign.strategies`` group, e.g. in its ``pyproject.toml``::

    [project.entry-points."selfalign.strategies"]
    my-strategy = "my_package.strategies"

The entry point names a module (whose ``@register_strategy`` decorators run on import) or a
strategy function (registered under the entry point's name). Plugins are loaded the first time
the strategies are listed or an unknown name is asked for.
"""

from __future__ import annotations

import random
import threading
from importlib.metadata import entry_points
from types import ModuleType
from typing import Callable, Protocol

import numpy as np

from ..errors import PluginError, UnknownStrategyError
from ..options import provide_choices

__all__ = ["Strategy", "register_strategy", "get_strategy", "strategy_names", "load_plugins", "STRATEGIES",
           "SCORERS", "CULTURAL_PROMPT", "ENTRY_POINT_GROUP", "scorer_of", "instruction_of"]

ENTRY_POINT_GROUP = "selfalign.strategies"

# Tao et al. (2024), "Cultural bias and cultural alignment of large language models", PNAS Nexus.
CULTURAL_PROMPT = ("You are an average human being born in {country} and living in {country} responding to the "
                   "following survey question.")
SCORERS = ("chrf", "semantic", "hybrid")


class Strategy(Protocol):
    def __call__(self, categories: list[str], query: str, k: int, rng: random.Random,
                 allowed: np.ndarray, scores: np.ndarray) -> list[int]:
        """Return up to k indices among ``allowed`` (a boolean mask), best first.

        ``scores`` holds the chrF++ score of every statement against the query.
        """


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, scorer: str = "chrf", instruction: str | None = None
                      ) -> Callable[[Strategy], Strategy]:
    """Register ``fn`` under ``name``; ``scorer`` picks the ``scores`` it receives (see the module docstring)."""
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")

    def deco(fn: Strategy) -> Strategy:
        fn.scorer = scorer  # type: ignore[attr-defined]
        fn.instruction = instruction  # type: ignore[attr-defined]
        STRATEGIES[name] = fn
        return fn
    return deco


def scorer_of(strategy: Strategy) -> str:
    return getattr(strategy, "scorer", "chrf")


def instruction_of(strategy: Strategy) -> str | None:
    return getattr(strategy, "instruction", None)


_plugins_lock = threading.Lock()
_plugins_loaded = False


def load_plugins() -> None:
    """Import the strategies other installed packages declare in the ``selfalign.strategies`` group (once)."""
    global _plugins_loaded
    with _plugins_lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
            except Exception as e:  # noqa: BLE001 - any failure of foreign code is reported the same way
                raise PluginError(f"the strategy plugin {ep.name!r} ({ep.value}) failed to load: "
                                  f"{type(e).__name__}: {e}; fix or uninstall the package that provides it",
                                  param="strategy") from e
            if not isinstance(loaded, ModuleType) and ep.name not in STRATEGIES:
                if not callable(loaded):
                    raise PluginError(f"the strategy plugin {ep.name!r} ({ep.value}) is neither a module nor a "
                                      "function", param="strategy")
                register_strategy(ep.name, scorer_of(loaded), instruction_of(loaded))(loaded)


def strategy_names() -> list[str]:
    """Every registered strategy, the plugins' included."""
    load_plugins()
    return list(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        load_plugins()
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategyError(f"unknown strategy {name!r}: valid strategies are "
                                   f"{', '.join(STRATEGIES)}") from None


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


@register_strategy("semantic", scorer="semantic")
def semantic(categories, query, k, rng, allowed, scores):
    return _ranked(scores, allowed, k)


@register_strategy("hybrid", scorer="hybrid")
def hybrid(categories, query, k, rng, allowed, scores):
    return _ranked(scores, allowed, k)


@register_strategy("cultural", instruction=CULTURAL_PROMPT)
def cultural(categories, query, k, rng, allowed, scores):
    """Cultural prompting alone: the instruction, no demonstrations."""
    return []


@register_strategy("cultural+chrf", instruction=CULTURAL_PROMPT)
def cultural_chrf(categories, query, k, rng, allowed, scores):
    """Cultural prompt plus the chrF++ demonstrations."""
    return _ranked(scores, allowed, k)


provide_choices("strategy", strategy_names)
