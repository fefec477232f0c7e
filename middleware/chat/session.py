"""A self-aligned chat: the conversation state and the slash commands.

:class:`ChatSession` holds the plain (unaligned) conversation and aligns each
request just before it is sent, so demonstrations never pile up in the history
and a ``/country`` switch takes effect on the very next turn. The model is an
injected function ``complete(messages, stream=True) -> iterator of text deltas``:
:func:`middleware.chat.backends.litellm_backend` builds one for any litellm model
(the embedded SmolLM2 by default); tests pass a scripted one. How answers and
demonstrations look lives in :mod:`middleware.chat.render`, terminal I/O in
``middleware.cli.chat``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..options import DEFAULT_K, DEFAULT_STRATEGY, AlignOptions
from ..retrieval.aligner import SelfAligner
from ..retrieval.demonstration import Demonstration
from ..retrieval.cache import aligner_for
from ..errors import InputError, SelfAlignError
from ..retrieval.relevance import Relevance
from .render import not_injected_note

__all__ = ["HELP", "ChatSession", "CommandResult", "Comparison", "Complete", "Turn"]

Complete = Callable[..., Iterable[str]]
"""``complete(messages, stream=True)``: yields the answer as text deltas."""

HELP = """\
/demos          show the demonstrations injected for the last message
/country XX     align with another country (ISO code or name), e.g. /country de
/profile FILE   align with a personal value profile (see `selfalign profiles questionnaire`)
/reset          forget the conversation so far
/help           this help
/quit           leave (Ctrl-D or Ctrl-C at the prompt also quit)
Ctrl-C while an answer is streaming stops that answer and keeps the chat."""

_COMMANDS = ("demos", "country", "profile", "reset", "help", "quit", "exit")


@dataclass
class Turn:
    """One answered message."""

    user: str
    answer: str
    messages: list[dict]
    """The request exactly as sent (with the demonstrations when aligned)."""
    demonstrations: list[Demonstration]
    aligned: bool
    interrupted: bool = False


@dataclass
class Comparison:
    """The same message answered without and with alignment."""

    unaligned: Turn
    aligned: Turn

    @property
    def interrupted(self) -> bool:
        return self.unaligned.interrupted or self.aligned.interrupted


@dataclass
class CommandResult:
    """Outcome of a slash command; the terminal decides how to show it."""

    action: str
    """quit, help, demos, reset, country, profile or error."""
    message: str = ""
    demonstrations: list[Demonstration] = field(default_factory=list)


class ChatSession:
    """A multi-turn conversation whose every request is self-aligned.

    ``history`` holds only user and assistant messages as typed and answered;
    each turn sends ``[system] + history + [user]`` with the k demonstrations for
    the new user message put in the system message. With ``align=False`` the
    request goes out unchanged (the aligner is still kept for ``compare``).

    The settings are checked at construction; ``complete`` (the model backend) may
    be given later as ``session.complete = ...``, so bad settings fail before a slow set-up.
    """

    def __init__(self, complete: Complete | None, country: str | None = None, language: str | None = None,
                 k: int = DEFAULT_K, strategy: str = DEFAULT_STRATEGY, profile: str | Path | None = None,
                 align: bool = True, seed: int | None = None, system: str | None = None, **options: Any):
        self.complete = complete
        self.language = language
        self.k = k
        self.strategy = strategy
        self.options = options  # the other AlignOptions fields (min_margin, ...), as given
        self.seed = seed
        self.align_enabled = align
        self.system = system
        self.aligner: SelfAligner | None = None
        if country is not None or profile is not None:
            self.aligner = self._make_aligner(country, profile)
        elif align:
            raise InputError("give a country (e.g. --country ro) or a profile file, or turn alignment off",
                                 param="country")
        self.history: list[dict] = []
        self.last_demonstrations: list[Demonstration] = []
        self.last_relevance: Relevance | None = None
        """The relevance decision for the last aligned message (why it got demonstrations or none)."""
        self.last_turn: Turn | Comparison | None = None

    # ------------------------------------------------------------------ settings

    def _make_aligner(self, country: str | None, profile: str | Path | None) -> SelfAligner:
        chosen = AlignOptions(country=country, language=self.language, k=self.k, strategy=self.strategy,
                              profile=profile, **self.options)
        aligner = aligner_for(chosen, seed=self.seed)
        if aligner is None:
            raise InputError(f"country {country!r} turns alignment off: use --no-align",
                             param="country")
        return aligner

    @property
    def description(self) -> str:
        if self.aligner is None:
            return "no alignment"
        what = self.aligner.profile.description
        return what if self.align_enabled else f"alignment off (would use: {what})"

    def set_country(self, country: str) -> None:
        """Align with another country from the next turn on (raises SelfAlignError, keeping the old one)."""
        self.aligner = self._make_aligner(country, None)

    def set_profile(self, path: str | Path) -> None:
        """Align with a user profile file from the next turn on (raises SelfAlignError, keeping the old one)."""
        self.aligner = self._make_aligner(None, path)

    def reset(self) -> None:
        self.history.clear()
        self.last_demonstrations = []
        self.last_relevance = None
        self.last_turn = None

    # ------------------------------------------------------------------ turns

    def request(self, text: str, aligned: bool | None = None) -> tuple[list[dict], list[Demonstration]]:
        """The messages that would be sent for ``text`` now, and the demonstrations in them."""
        aligned = self.align_enabled if aligned is None else aligned
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
            [dict(m) for m in self.history] + [{"role": "user", "content": text}]
        if not aligned:
            return messages, []
        if self.aligner is None:
            raise InputError("alignment needs a country or a profile (/country XX or /profile FILE)",
                                 param="country")
        return self.aligner.align_with_demonstrations(messages)

    def _run(self, text: str, request: tuple[list[dict], list[Demonstration]], aligned: bool,
             on_delta: Callable[[str], Any] | None) -> Turn:
        messages, demos = request
        parts: list[str] = []
        interrupted = False
        stream = None
        try:
            stream = iter(self.complete(messages, stream=True))
            for delta in stream:
                if delta:
                    parts.append(delta)
                    if on_delta is not None:
                        on_delta(delta)
        except KeyboardInterrupt:
            # Ctrl-C ends this answer only; what was streamed so far is the answer.
            interrupted = True
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                close()
        return Turn(text, "".join(parts), messages, demos, aligned, interrupted)

    def _record(self, turn: Turn) -> None:
        # A turn without answer text is not kept: some providers reject empty
        # assistant messages, and keeping the question alone would put two user messages in a row.
        if turn.answer.strip():
            self.history += [{"role": "user", "content": turn.user},
                             {"role": "assistant", "content": turn.answer}]

    def ask(self, text: str, on_delta: Callable[[str], Any] | None = None,
            on_demos: Callable[[list[Demonstration]], Any] | None = None) -> Turn:
        """Answer ``text`` (streaming deltas to ``on_delta``) and add the exchange to the history.

        ``on_demos`` gets the injected demonstrations (possibly none) just before the model is called.
        Ctrl-C (KeyboardInterrupt) while streaming returns the partial answer with
        ``interrupted=True``; backend errors propagate and leave the history unchanged.
        """
        request = self.request(text)
        if on_demos is not None:
            on_demos(request[1])
        turn = self._run(text, request, self.align_enabled, on_delta)
        if turn.aligned:
            self.last_demonstrations = turn.demonstrations
            self.last_relevance = getattr(turn.demonstrations, "relevance", None)
        self.last_turn = turn
        self._record(turn)
        return turn

    def compare(self, text: str, on_delta: Callable[[str, str], Any] | None = None,
                on_demos: Callable[[list[Demonstration]], Any] | None = None) -> Comparison:
        """Answer ``text`` without and with alignment from the same history.

        ``on_delta(which, delta)`` gets ``which`` = "unaligned" or "aligned". The
        history continues with the answer of the session's own mode. Ctrl-C stops both.
        ``on_demos`` gets the aligned request's demonstrations before the first model call.
        """
        if self.aligner is None:
            raise InputError("compare needs a country or a profile", param="country")
        requests = {"unaligned": self.request(text, False), "aligned": self.request(text, True)}
        if on_demos is not None:
            on_demos(requests["aligned"][1])
        turns: dict[str, Turn] = {}
        for which, req in requests.items():
            aligned = which == "aligned"
            if turns and turns["unaligned"].interrupted:
                turns[which] = Turn(text, "", req[0], req[1], aligned, True)
                continue
            cb = None if on_delta is None else (lambda d, w=which: on_delta(w, d))
            turns[which] = self._run(text, req, aligned, cb)
        result = Comparison(turns["unaligned"], turns["aligned"])
        self.last_demonstrations = result.aligned.demonstrations
        self.last_relevance = getattr(result.aligned.demonstrations, "relevance", None)
        self.last_turn = result
        self._record(result.aligned if self.align_enabled else result.unaligned)
        return result

    # ------------------------------------------------------------------ slash commands

    @staticmethod
    def is_command(line: str) -> bool:
        return bool(re.match(r"/[A-Za-z]", line.strip()))

    def command(self, line: str) -> CommandResult:
        """Run a slash command such as ``/country de``; errors come back as ``action="error"``."""
        name, _, arg = line.strip()[1:].partition(" ")
        name, arg = name.lower(), arg.strip()
        if name not in _COMMANDS:
            return CommandResult("error", f"unknown command /{name} (try /help)")
        if name in ("quit", "exit"):
            return CommandResult("quit")
        if name == "help":
            return CommandResult("help", HELP)
        if name == "reset":
            self.reset()
            return CommandResult("reset", "conversation cleared")
        if name == "demos":
            if not self.last_demonstrations:
                why = ("alignment is off (--no-align): nothing was injected" if not self.align_enabled
                       else "no demonstrations yet: send a message first" if self.last_turn is None
                       else not_injected_note(self.last_relevance) if self.last_relevance is not None
                       else "no demonstrations were injected for the last message")
                return CommandResult("demos", why)
            return CommandResult("demos", self.description, list(self.last_demonstrations))
        if not arg:
            usage = "/country XX (e.g. /country de)" if name == "country" else "/profile FILE"
            return CommandResult("error", f"usage: {usage}")
        try:
            if name == "country":
                self.set_country(arg)
            else:
                self.set_profile(Path(arg).expanduser())
        except SelfAlignError as e:
            return CommandResult("error", str(e))
        return CommandResult(name, f"now aligned with {self.aligner.profile.description}")
