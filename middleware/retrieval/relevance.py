"""Whether a message is about values at all: the gate in front of retrieval.

A chat proxy sees mostly requests that have nothing to do with the survey ("sort a list in
Python", "hi!"); injecting five value statements into those costs tokens and may steer a coding
answer with a statement on terrorism. Before retrieval the aligner asks this module how likely
the message (with its recent user turns when it is a short follow-up) is to touch what the
value statements are about, and injects nothing below ``min_relevance``.

The score is a logistic regression over hashed character 1-5-grams and word 1-2-grams (numpy
only, ~0.1 ms a message); the semantic strategies, which embed the message for retrieval anyway,
use a logistic regression over that e5 embedding instead. The default (n-gram) gate is two-stage: the
n-gram score decides below ``band_low`` and at or above ``band_high`` (held to the same threshold); a message in between is embedded
(bounded, as semantic retrieval embeds) and judged by the e5 gate when the ``semantic`` extra is installed,
by its n-gram score otherwise. The band is chosen by cross-validation in the training script. Both ship with the package (``relevance.npz``, made by
``tools/train_relevance.py`` from the dev split of ``benchmarks/data/relevance``, the probe
templates of all 14 languages, and neutral requests written for it).
"""

from __future__ import annotations

import re
import threading
import zlib
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._messages import message_text

__all__ = ["Relevance", "RelevanceModel", "relevance_model", "hashed_features", "conversation_query",
           "ALIGNMENT_OFF", "MODEL_PATH", "FOLLOW_UP_WORDS", "FOLLOW_UP_REASON", "ITEM_REASON", "survey_item"]

MODEL_PATH = Path(__file__).with_name("relevance.npz")
FOLLOW_UP_WORDS = 6
"""A last user message of at most this many words is a follow-up ("Why?", "And in Germany?") and is
judged and retrieved together with the user turns before it."""
FOLLOW_UP_REASON = "about values (a follow-up, read with the earlier user turns)"
ITEM_REASON = "about values (a survey item, judged without the instructions around it)"
CONTEXT_TURNS = 2
"""How many earlier user turns a follow-up is read with."""

# Hashing: character n-grams of the lower-cased text with spaces at word edges, orders 1-5.
_ORDERS = (1, 2, 3, 4, 5)
_MAX_CHARS = 1000  # a pasted file is judged by its start: a values question is short
_BASE = np.uint64(1_000_003)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¿¡«»“”„…"


def _normalise(text: str) -> str:
    return " " + " ".join(text[:_MAX_CHARS].lower().split()) + " "


def hashed_features(text: str, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(bucket ids, weights) of ``text``'s character n-grams, each distinct bucket once, L2-normalised.

    The hash is a polynomial over code points (stable across processes, unlike ``hash``), mixed by a
    Fibonacci multiplier and cut to ``bits`` bits.
    """
    line = _normalise(text)
    codes = np.frombuffer(line.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    shift = np.uint64(64 - bits)
    chunks = []
    with np.errstate(over="ignore"):
        h = np.zeros(len(codes), dtype=np.uint64)
        for n in _ORDERS:
            if n > len(codes):
                break
            # h[i] holds the hash of codes[i:i+n] after n rounds.
            h = h[:len(codes) - n + 1] * _BASE + codes[n - 1:]
            chunks.append(((h + np.uint64(n)) * _MIX) >> shift)
        # Word unigrams and bigrams too: whole words say more about a topic than their letters.
        words = [w.strip(_PUNCT) for w in line.split()]
        words = [w for w in words if w]
        grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        if grams:
            digest = np.array([zlib.crc32(g.encode("utf-8")) for g in grams], dtype=np.uint64)
            chunks.append(((digest + np.uint64(7)) * _MIX) >> shift)
    ids = np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.uint64)
    ids = ids.astype(np.intp)
    weights = np.full(len(ids), 1.0 / np.sqrt(max(len(ids), 1)), dtype=np.float32)
    return ids, weights


class RelevanceModel:
    """The shipped classifier: P(message is about values) from hashed character n-grams."""

    def __init__(self, path: Path = MODEL_PATH):
        with np.load(path) as data:
            self.weights = data["weights"].astype(np.float32)
            self.bias = float(data["bias"])
            self.bits = int(data["bits"])
            self.semantic_weights = data["semantic_weights"].astype(np.float32)
            self.semantic_bias = float(data["semantic_bias"])
            self.band_low = float(data["band_low"])
            self.band_high = float(data["band_high"])
        if self.weights.shape != (1 << self.bits,):
            raise ValueError(f"{path}: weights of shape {self.weights.shape} do not match {self.bits} hash bits")

    def score(self, text: str) -> float:
        """Probability in [0, 1] that ``text`` touches what the value statements are about."""
        if not text or not text.strip():
            return 0.0
        ids, w = hashed_features(text, self.bits)
        z = self.bias + float(self.weights[ids] @ w)
        return float(1.0 / (1.0 + np.exp(-z)))

    def semantic_score(self, text: str) -> float:
        """The same probability from the message's e5 embedding: what the semantic strategies decide by,
        since they embed the message for retrieval anyway (far better on natural messages, ~20 ms)."""
        if not text or not text.strip():
            return 0.0
        from .semantic import embed_query

        z = self.semantic_bias + float(embed_query(text) @ self.semantic_weights)
        return float(1.0 / (1.0 + np.exp(-z)))


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _model() -> RelevanceModel:
    return RelevanceModel()


def relevance_model() -> RelevanceModel:
    """The shipped model, loaded once (thread-safe)."""
    with _lock:
        return _model()


@dataclass(frozen=True)
class Relevance:
    """The decision for one message: inject or not, the score, the threshold it was held to, and why.

    ``to_dict()`` is the shape every entry point reports (the proxy's ``/v1/selfalign/demonstrations``,
    ``selfalign demos --json``, the LiteLLM callback's metadata).
    """

    inject: bool
    score: float
    threshold: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score"] = round(self.score, 4)
        return out

    def summary(self) -> str:
        """One phrase for people: the reason and the score against the threshold (the chat's note, demos)."""
        return f"{self.reason} (relevance {self.score:.2f} < {self.threshold:g})"

    def header(self) -> str:
        """The ``X-SelfAlign-Relevance`` header value (ASCII): the reason and the score against the threshold."""
        return f"{self.reason}; score={self.score:.3f}; threshold={self.threshold:g}"

    @classmethod
    def judge(cls, text: str, threshold: float, semantic: bool = False) -> "Relevance":
        """Score ``text`` and hold it to ``threshold`` (0: always inject, the paper's setting);
        ``semantic``: by the message's sentence embedding (the semantic strategies) rather than its n-grams.

        A message that holds a fill-in-the-blank item (a survey question pasted with instructions around it)
        is also judged by the item alone: the instructions, often in another language than the item, say
        nothing about its topic."""
        if not text or not text.strip():
            return cls(False, 0.0, threshold, "no text in the user messages")
        if threshold <= 0:
            return cls(True, 1.0, threshold, "min_relevance is 0: every message gets demonstrations")
        decision = cls._judge(text, threshold, semantic)
        item = survey_item(text) if not decision.inject else None
        if item:
            # By the default (n-gram first) gate even for the semantic strategies: it learned the survey's own
            # statements in all 14 languages, the e5 gate natural messages in six.
            by_item = cls._judge(item, threshold, False)
            if by_item.inject:
                return replace(by_item, reason=ITEM_REASON)
        return decision

    @classmethod
    def _judge(cls, text: str, threshold: float, semantic: bool) -> "Relevance":
        model = relevance_model()
        if semantic:
            score = model.semantic_score(text)
        else:
            score = model.score(text)
            # The uncertain band only: an embedding costs ~20 ms, the n-gram score 0.1 ms. Outside it the
            # n-gram score decides, held to the same threshold (min_relevance 0.9 is 0.9 for both scores).
            if model.band_low <= score < model.band_high:
                from .semantic import available

                if available():
                    score = model.semantic_score(text)
        if score >= threshold:
            return cls(True, score, threshold, "about values")
        return cls(False, score, threshold, "not about values")


ALIGNMENT_OFF = Relevance(False, 0.0, 0.0, "alignment is off (country none)")
"""The decision reported when a request turned alignment off."""


_BLANK = "___"
_LABEL = re.compile(r"^\s*[^\s:]{1,24}:\s*")  # "Statement: ", "Options: "


def survey_item(text: str) -> str | None:
    """The fill-in-the-blank item in ``text``: its one line with a blank (``___``), without a leading label,
    followed by its options when one of the next two lines lists them ("a / b"); None when there is no such
    line or more than one."""
    lines = text[:_MAX_CHARS].splitlines()
    blanks = [i for i, line in enumerate(lines) if _BLANK in line]
    if len(blanks) != 1:
        return None
    i = blanks[0]
    item = _LABEL.sub("", lines[i]).strip()
    options = next((_LABEL.sub("", line).strip() for line in lines[i + 1:i + 3] if " / " in line), None)
    out = f"{item} ({options})" if options else item
    return out if out != text.strip() else None


def conversation_query(messages: Sequence[dict]) -> str:
    """The last user message, and for a short follow-up also the user turns before it (oldest first):
    what a follow-up is judged and retrieved by (it is not judged alone: "Are you sure?" says nothing)."""
    users = [message_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users or not users[-1].strip():
        return ""
    last = users[-1]
    if len(last.split()) > FOLLOW_UP_WORDS:
        return last
    earlier = [u for u in users[:-1] if u.strip()][-CONTEXT_TURNS:]
    return "\n".join(earlier + [last])
