"""selfalign: align any LLM with a country's (or a user's) values by in-context WVS demonstrations.

The method is Self-Alignment (Choenni & Shutova, 2024): the k World Values Survey
statements most similar to the user's message by chrF++ are completed with the chosen
country's majority answer and prepended to the system message.
"""

from .retrieval.aligner import SelfAligner
from .retrieval.cache import align
from .retrieval.demonstration import Demonstration, Selection
from .retrieval.relevance import Relevance
from .retrieval.chrf import ChrfIndex, chrf_pp
from .data.countries import PAPER_PAIRS, resolve_country, resolve_language
from .errors import (InputError, ModelError, NoAnswersError, ProfileError, SelfAlignError, UnknownCountryError,
                     UnknownLanguageError, UnknownStrategyError)
from .options import AlignOptions
from .data.probes import Probe, load_probes
from .data.profile import Statement, ValueProfile
from .retrieval.strategies import register_strategy
from .data.user_profile import load_user_profile

from ._version import __version__

__all__ = [
    "SelfAligner", "align", "Demonstration", "Selection", "Relevance", "chrf_pp", "ChrfIndex", "Probe", "load_probes", "ValueProfile",
    "Statement", "load_user_profile", "register_strategy", "resolve_country", "resolve_language", "PAPER_PAIRS",
    "AlignOptions", "SelfAlignError", "InputError", "ModelError", "UnknownCountryError", "UnknownLanguageError",
    "UnknownStrategyError", "ProfileError", "NoAnswersError", "wrap_openai",
]


def __getattr__(name):
    # The OpenAI wrapper needs the openai package (the `serve` extra): import it only when asked for.
    if name == "wrap_openai":
        from .integrations.openai_client import wrap_openai

        return wrap_openai
    raise AttributeError(name)
