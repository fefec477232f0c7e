"""The one interface every in-process model runtime implements.

Two implementations: :class:`~middleware.models.llamacpp.LlamaCppModel` (GGUF
files through llama.cpp: fast start, small memory) and
:class:`~middleware.models.transformers_rt.TransformersModel` (Hugging Face
checkpoints through torch).  The litellm ``local/`` provider and the
evaluator's local backend only use the methods below.
"""

from __future__ import annotations

import contextlib
import sys
from abc import ABC, abstractmethod
from typing import Callable, Iterable, Iterator, Sequence

from .decoding import Completion, Penalties, PromptToken, StreamChunk
from .registry import EMBEDDED

__all__ = ["Runtime", "option_tokens", "spinner"]


class Runtime(ABC):
    name: str
    """The model name it was loaded as (without ``local/``)."""
    runtime: str
    """``llamacpp`` or ``transformers``."""
    forward_passes: int
    """Model evaluations so far (forward calls or llama.cpp requests): a cost counter."""
    supports_logprobs: bool = False
    """Whether :meth:`generate` takes ``logprobs`` (OpenAI's per-token log-probabilities)."""

    @abstractmethod
    def format_chat(self, messages: Sequence[dict]) -> tuple[str, list[str]]:
        """Render chat ``messages`` as a prompt with the model's own chat template, or as
        plain "Role: text" blocks when it has none; return ``(prompt, stop_strings)``."""

    @abstractmethod
    def generate(self, prompt: str, max_tokens: int = 128, temperature: float = 1.0,
                 top_p: float = 1.0, stop: Iterable[str] | str | None = None, n: int = 1,
                 seed: int | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 penalties: Penalties | None = None) -> list[Completion]:
        """Sample ``n`` completions.  ``temperature`` 0 is greedy.  Text ends before the first
        stop string ("stop"), at end of sequence ("stop") or after ``max_tokens`` ("length");
        ``should_stop`` is polled to abandon the work early.  ``penalties`` (default: none)
        apply before the temperature, in greedy decoding too."""

    @abstractmethod
    def stream_chunks(self, prompt: str, max_tokens: int = 128, temperature: float = 1.0,
                      top_p: float = 1.0, stop: Iterable[str] | str | None = None,
                      seed: int | None = None, penalties: Penalties | None = None) -> Iterator[StreamChunk]:
        """Text deltas with counts; the last chunk carries the finish reason.  A partial stop
        string is never emitted; closing the iterator stops decoding."""

    @abstractmethod
    def option_logprobs(self, prompts: Sequence[str], options: Sequence[Sequence[str]],
                        batch_size: int = 16) -> list[list[float]]:
        """Total log-probability of each option as a continuation of its prompt (prompt and
        option tokenised jointly; the separating space belongs to the option)."""

    def prompt_logprobs(self, prompt: str, top: int = 0) -> list[PromptToken]:
        """Each token of ``prompt`` with its log-probability given the tokens before it and the ``top`` most
        likely tokens there (what OpenAI's text completions return with ``echo`` and ``logprobs``). A runtime
        that cannot score a whole prompt at once raises :class:`~middleware.errors.InputError`."""
        from ..errors import InputError

        raise InputError(f"scoring a prompt (echo with logprobs) needs the transformers runtime: serve "
                         f"local/{self.name}?runtime=transformers", param="echo")

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Model tokens in ``text`` (no special tokens added)."""

    def sampling_defaults(self) -> tuple[float, float]:
        """The model's own default ``(temperature, top_p)``."""
        return 1.0, 1.0

    def penalty_defaults(self) -> Penalties:
        """The penalties of a chat request that sets none: an embedded model's own, else none."""
        entry = EMBEDDED.get(self.name)
        return entry.penalties if entry else Penalties()

    def stream(self, prompt: str, max_tokens: int = 128, temperature: float = 1.0,
               top_p: float = 1.0, stop: Iterable[str] | str | None = None,
               seed: int | None = None, penalties: Penalties | None = None) -> Iterator[str]:
        """Yield text deltas; joined they equal ``generate(...)[0].text`` for the same seed."""
        chunks = self.stream_chunks(prompt, max_tokens, temperature, top_p, stop, seed, penalties)
        try:
            for chunk in chunks:
                if chunk.text:
                    yield chunk.text
        finally:
            chunks.close()


def option_tokens(prompts: Sequence[str], options: Sequence[Sequence[str]],
                  tokenize: Callable[[str], list[int]]) -> Iterator[tuple[int, int, list[int], int]]:
    """The option-scoring convention both runtimes share: ``(i, j, joint, k)`` per non-empty option
    ``j`` of prompt ``i``, where ``joint`` tokenises prompt and option together and the option's
    tokens are ``joint[k:]``.

    Trailing whitespace on the prompt moves onto an option without leading whitespace, so that
    " Agree" after "...:" and "Agree" after "...: " score the same tokens.  ``k`` is at least 1:
    the first token has no prediction to score.
    """
    if len(prompts) != len(options):
        raise ValueError("prompts and options must have the same length")
    for i, (prompt, opts) in enumerate(zip(prompts, options)):
        prompt_ids: dict[str, list[int]] = {}
        for j, opt in enumerate(opts):
            if not opt:
                continue
            p = prompt
            if not opt[0].isspace():
                stripped = p.rstrip()
                opt, p = p[len(stripped):] + opt, stripped
            p_ids = prompt_ids.get(p) or prompt_ids.setdefault(p, tokenize(p))
            joint = tokenize(p + opt)
            k = 0
            while k < min(len(p_ids), len(joint)) and p_ids[k] == joint[k]:
                k += 1
            yield i, j, joint, max(k, 1)


def spinner(message: str, progress: bool):
    """A rich spinner on a terminal's stderr while loading; nothing otherwise."""
    if progress and sys.stderr.isatty():
        from rich.console import Console

        return Console(stderr=True).status(message, spinner="dots")
    return contextlib.nullcontext()
