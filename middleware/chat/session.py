"""A self-aligned chat: the conversation state, the model backend and rendering helpers.

:class:`ChatSession` holds the plain (unaligned) conversation and aligns each
request just before it is sent, so demonstrations never pile up in the history
and a ``/country`` switch takes effect on the very next turn. The model is an
injected function ``complete(messages, stream=True) -> iterator of text deltas``;
:func:`litellm_backend` builds one for any litellm model (the embedded Gemma by
default), tests pass a scripted one. Terminal I/O lives in ``middleware.cli.chat``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..options import DEFAULT_MIN_RELEVANCE
from ..retrieval.aligner import DEFAULT_K, Demonstration, SelfAligner
from ..retrieval.relevance import Relevance
from ..errors import ChatBackendError, InputError, SelfAlignError

__all__ = [
    "HELP",
    "ChatSession",
    "CommandResult",
    "Comparison",
    "Complete",
    "Turn",
    "demos_plain",
    "demos_table",
    "litellm_backend",
    "not_injected_note",
    "preload_model",
]

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
                 k: int = DEFAULT_K, strategy: str = "chrf", profile: str | Path | None = None,
                 align: bool = True, seed: int | None = None, system: str | None = None,
                 min_relevance: float = DEFAULT_MIN_RELEVANCE):
        self.complete = complete
        self.min_relevance = min_relevance
        self.language = language
        self.k = k
        self.strategy = strategy
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
        return SelfAligner(country=country, language=self.language, k=self.k, strategy=self.strategy,
                           profile=profile, seed=self.seed, min_relevance=self.min_relevance)

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


# ---------------------------------------------------------------------- rendering


def not_injected_note(relevance: Relevance) -> str:
    """One line on why a message got no demonstrations (the chat's dim note, /demos)."""
    if relevance.inject:
        return "no statement of the profile matched the last message"
    return (f"nothing injected for the last message: {relevance.reason} (relevance {relevance.score:.2f} < "
            f"{relevance.threshold:g}); only messages about values get demonstrations")


def demos_plain(demos: Sequence[Demonstration]) -> str:
    """Demonstrations as plain numbered lines (for pipes and logs)."""
    lang = f"  (language: {demos[0].language})\n" if demos and demos[0].language else ""
    return lang + "\n".join(f"  {i}. [{d.score:.1f}] {d.text}" for i, d in enumerate(demos, 1))


def demos_table(demos: Sequence[Demonstration], title: str = "") -> Any:
    """Demonstrations as a rich Table (chrF++ score, probe id, statement)."""
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", show_edge=False, pad_edge=False,
                  header_style="dim", style="dim")
    table.add_column("#", justify="right")
    table.add_column("chrF++", justify="right")
    table.add_column("probe")
    table.add_column("lang")
    table.add_column("demonstration", style="italic")
    for i, d in enumerate(demos, 1):
        table.add_row(str(i), f"{d.score:.1f}", d.probe_id or "", d.language or "", d.text)
    return table


# ---------------------------------------------------------------------- model backend


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[0].split())
    # litellm repeats the class name ("litellm.BadRequestError: BadRequestError: ...").
    text = re.sub(r"^(litellm\.)?\w+Error: (\w+Error: )?", "", text)
    return text[:300] or type(exc).__name__


def _missing_keys(litellm: Any, model: str, api_base: str | None) -> list[str]:
    try:
        info = litellm.validate_environment(model=model, api_base=api_base)
    except Exception:  # an unknown provider is reported by the first call instead
        return []
    # Only credentials: settings such as OLLAMA_API_BASE have working defaults.
    return [k for k in info.get("missing_keys") or [] if re.search(r"KEY|TOKEN|SECRET", k)]


def _backend_error(litellm: Any, model: str, exc: Exception) -> ChatBackendError:
    if isinstance(exc, getattr(litellm, "AuthenticationError", ())):
        return ChatBackendError(f"model {model}: authentication failed: {_first_line(exc)}")
    return ChatBackendError(f"model {model}: {_first_line(exc)}")


def preload_model(model: str) -> None:
    """Load an embedded/local model now (with its spinner) rather than inside the first answer."""
    from ..models.inprocess import is_local

    if not is_local(model):
        return
    from ..models.loading import get_local_model

    try:
        get_local_model(model)
    except (FileNotFoundError, OSError, ValueError) as e:
        raise ChatBackendError(f"model {model}: {_first_line(e)}") from None


def litellm_backend(model: str | None = None, max_tokens: int | None = None, temperature: float | None = None,
                    api_base: str | None = None, seed: int | None = None) -> Complete:
    """A ``complete`` function calling ``model`` through litellm (default: the embedded SmolLM2;
    ``local/`` models are called in-process, without litellm).

    Raises :class:`ChatBackendError` naming the environment variable when the
    provider's API key is not set, so a chat never starts only to fail on its first message.
    """
    from ..models.provider import DEFAULT_MODEL, import_litellm, is_local

    model = model or DEFAULT_MODEL
    if is_local(model):
        # The embedded models need no litellm (which takes seconds to import): call them in-process.
        return _in_process_backend(model, {"max_tokens": max_tokens, "temperature": temperature, "seed": seed})
    litellm = import_litellm()
    # litellm prints banners ("Give Feedback / Get Help") around every error.
    litellm.suppress_debug_info = True
    missing = _missing_keys(litellm, model, api_base)
    if missing:
        names = " and ".join(missing)
        raise ChatBackendError(f"model {model} needs {names}: set it in the environment "
                               f"(export {missing[0]}=...)")
    params = {k: v for k, v in {"max_tokens": max_tokens, "temperature": temperature, "api_base": api_base,
                                "seed": seed}.items() if v is not None}

    def complete(messages: list[dict], stream: bool = True) -> Iterator[str]:
        try:
            response = litellm.completion(model=model, messages=messages, stream=stream, **params)
        except Exception as e:
            raise _backend_error(litellm, model, e) from None
        if not stream:
            yield response.choices[0].message.content or ""
            return
        try:
            for chunk in response:
                choices = getattr(chunk, "choices", None) or []
                delta = getattr(choices[0].delta, "content", None) if choices else None
                if delta:
                    yield delta
        except Exception as e:
            raise _backend_error(litellm, model, e) from None
        finally:
            # Stops local decoding at once when the reader stops early (Ctrl-C).
            inner = getattr(response, "completion_stream", None)
            close = getattr(inner, "close", None)
            if callable(close):
                close()

    return complete


def _in_process_backend(model: str, params: dict) -> Complete:
    from ..models.inprocess import complete as generate, stream_deltas

    params = {k: v for k, v in params.items() if v is not None}

    def complete(messages: list[dict], stream: bool = True) -> Iterator[str]:
        try:
            if not stream:
                yield generate(model, messages, params)[0].text
                return
            deltas = stream_deltas(model, messages, params)
            try:
                for d in deltas:
                    if d["text"]:
                        yield d["text"]
            finally:
                deltas.close()  # stops decoding at once when the reader stops early (Ctrl-C)
        except Exception as e:
            raise ChatBackendError(f"model {model}: {_first_line(e)}") from None

    return complete
