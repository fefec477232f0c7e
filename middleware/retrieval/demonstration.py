"""What retrieval hands on: the chosen statements (:class:`Demonstration`) and the request's
:class:`Selection` of them with the relevance decision behind it. Formats, the chat and the proxy read
these; only the aligner makes them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from .relevance import Relevance

__all__ = ["Demonstration", "Selection"]


@dataclass(frozen=True)
class Demonstration:
    """One injected statement: its text, its score against the message (chrF++, or semantic similarity with
    the semantic strategies), its probe, category and language."""

    text: str
    score: float
    probe_id: str | None
    category: str
    language: str | None = None
    """Language the demonstration is in (chosen per message with language="auto")."""

    def to_dict(self) -> dict:
        return asdict(self)


class Selection(list):
    """The demonstrations chosen for a request (a list, best first) and the relevance decision behind them."""

    def __init__(self, demonstrations: Iterable[Demonstration] = (), relevance: Relevance | None = None):
        super().__init__(demonstrations)
        self.relevance = relevance if relevance is not None else Relevance(True, 1.0, 0.0, "not judged")
