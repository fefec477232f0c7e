"""What every runtime returns and how it is asked to sample, plus the text bookkeeping of the Python decoders.

:class:`Completion` and :class:`StreamChunk` are the results of both runtimes;
:class:`Penalties` are the repetition penalties both apply.
:func:`plain_chat_prompt` renders chat messages for models without a chat
template; :class:`TextRow` turns sampled tokens into text that never shows part
of a stop string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .._messages import message_text

__all__ = ["Completion", "StreamChunk", "PromptToken", "Penalties", "TextRow", "holdback", "plain_chat_prompt", "PLAIN_STOPS"]

_ROLE_LABELS = {"system": "System", "developer": "System", "user": "User",
                "assistant": "Assistant", "tool": "Tool", "function": "Tool"}
PLAIN_STOPS = ["\nUser:", "\nSystem:", "\nAssistant:"]
"""Stop strings of :func:`plain_chat_prompt`: a base model would go on to write the next turn."""


@dataclass(frozen=True)
class Completion:
    """One finished completion; token counts are model tokens."""

    text: str
    finish_reason: str  # "stop" (stop string or EOS) or "length"
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[dict] | None = None
    """When asked for: OpenAI's ``choices[].logprobs.content``, one entry per generated token."""


@dataclass(frozen=True)
class StreamChunk:
    """A streamed text delta; ``finish_reason`` is set only on the last chunk."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[dict] | None = None
    """When asked for: the entries of OpenAI's ``logprobs.content`` for this chunk's tokens."""


@dataclass(frozen=True)
class PromptToken:
    """One token of a prompt scored by the model (OpenAI's ``echo`` with ``logprobs``)."""

    token: str
    offset: int
    """Where the token starts in the prompt, in characters."""
    logprob: float | None
    """log p(token | the tokens before it, BOS included); None for a first token nothing predicts (no BOS)."""
    top: dict[str, float]
    """The most likely tokens at this position with their log-probabilities (empty when not asked for)."""


@dataclass(frozen=True)
class Penalties:
    """Penalties against repeating what is already in the context (prompt and answer so far), as
    llama.cpp's samplers define them; the default penalises nothing.

    ``repeat``, ``frequency`` and ``presence`` look at the last ``last_n`` tokens (0: none).  A token
    seen there has its logit divided by ``repeat`` (multiplied when negative), then lowered by
    ``frequency`` per occurrence and once by ``presence`` (OpenAI's ``frequency_penalty`` and
    ``presence_penalty``, whose own window is the answer so far).
    """

    repeat: float = 1.0
    frequency: float = 0.0
    presence: float = 0.0
    last_n: int = 64

    def __post_init__(self) -> None:
        from ..errors import InputError

        for name, low, high in (("frequency", -2.0, 2.0), ("presence", -2.0, 2.0), ("repeat", 0.01, 10.0)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise InputError(f"{_PARAMS[name]} must be between {low:g} and {high:g}, not {value:g}",
                                 param=_PARAMS[name])
        if self.last_n < 0:  # llama.cpp's server refuses its own -1 ("the whole context")
            raise InputError(f"repeat_last_n must be 0 (off) or more, not {self.last_n}", param="repeat_last_n")

    @property
    def active(self) -> bool:
        return self.last_n != 0 and (self.repeat != 1.0 or self.frequency != 0.0 or self.presence != 0.0)

    def llamacpp(self) -> dict:
        """The same as llama.cpp server request fields."""
        return {"repeat_penalty": self.repeat, "frequency_penalty": self.frequency,
                "presence_penalty": self.presence, "repeat_last_n": self.last_n}


_PARAMS = {"repeat": "repeat_penalty", "frequency": "frequency_penalty", "presence": "presence_penalty"}


def plain_messages(messages: Sequence[dict]) -> list[dict]:
    """Messages reduced to ``{"role", "content": str}`` (multi-part content joined)."""
    return [{"role": m.get("role", "user"), "content": message_text(m.get("content"))} for m in messages]


def plain_chat_prompt(messages: Sequence[dict]) -> tuple[str, list[str]]:
    """"System: ...\\n\\nUser: ...\\n\\nAssistant:" and the stop strings that end the answer."""
    blocks = [f"{_ROLE_LABELS.get(m['role'], m['role'].capitalize())}: {m['content'].strip()}"
              for m in plain_messages(messages)]
    blocks.append("Assistant:")
    return "\n\n".join(blocks), list(PLAIN_STOPS)


def holdback(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that could begin a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


class TextRow:
    """Decoding state of one sequence: token ids, emitted text, finish reason."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], max_tokens: int):
        self.tok, self.stops, self.max_tokens = tokenizer, [s for s in stops if s], max_tokens
        self.ids: list[int] = []
        self.text = ""
        self.emitted = 0
        self.finish_reason: str | None = None

    def _flush(self, end: int) -> str:
        delta = self.text[self.emitted:max(end, self.emitted)]
        self.emitted = max(end, self.emitted)
        return delta

    def push(self, token: int, is_eos: bool) -> str:
        """Consume one sampled token; return the text that is now safe to emit."""
        if is_eos:
            self.finish_reason = "stop"
            return self._flush(len(self.text))
        self.ids.append(token)
        # Decoding the whole sequence (not token by token) keeps multi-token
        # characters and tokenizer space handling right; sequences are short.
        self.text = self.tok.decode(self.ids, skip_special_tokens=True)
        hits = [i for i in (self.text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            self.finish_reason = "stop"
            return self._flush(len(self.text))
        if len(self.ids) >= self.max_tokens:
            self.finish_reason = "length"
            return self._flush(len(self.text))
        safe = len(self.text) - holdback(self.text, self.stops)
        # A trailing U+FFFD is usually half of a multi-byte character.
        while safe > self.emitted and self.text[safe - 1] == "\ufffd":
            safe -= 1
        return self._flush(safe)
