"""``selfalign chat``: a terminal chat whose every message is self-aligned.

Interactive when stdin is a terminal; otherwise (``--message`` or piped lines)
it answers and exits. Output is rich when stdout is a terminal, plain text otherwise.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, Optional, TextIO

import typer

from .align_flags import align_flags

__all__ = ["ChatTerminal", "register"]

# readline ignores zero-width escape codes only between \001 and \002.
_PROMPT_TTY = "\001\x1b[1;36m\002you\001\x1b[0m\002> "
_PROMPT_PLAIN = "you> "


class ChatTerminal:
    """Shows a :class:`~middleware.chat.session.ChatSession` on a terminal (rich) or a pipe (plain)."""

    def __init__(self, session, plain: bool, show_demos: bool = False, compare: bool = False,
                 out: TextIO | None = None, model: str = ""):
        from rich.console import Console

        self.session = session
        self.plain = plain
        self.show_demos = show_demos
        self.compare = compare
        self.model = model
        self.out = out or sys.stdout
        self._noted_language = False
        self.console = Console(file=self.out, highlight=False, soft_wrap=not plain,
                               force_terminal=None if not plain else False, no_color=plain or None)

    # ------------------------------------------------------------------ output

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def info(self, text: str) -> None:
        if self.plain:
            # Notes go to stderr so that piped stdout holds only what was asked for.
            print(text, file=sys.stderr)
        else:
            self.console.print(text, style="dim", markup=False)

    def error(self, text: str) -> None:
        if self.plain:
            print(f"selfalign: error: {text}", file=sys.stderr)
        else:
            self.console.print(f"error: {text}", style="bold red", markup=False)

    def demos(self, demos, title: str = "") -> None:
        from ..chat.render import demos_plain, demos_table

        if self.plain:
            self._write(f"demonstrations ({title}):\n" if title else "demonstrations:\n")
            self._write(demos_plain(demos) + "\n")
        else:
            self.console.print(demos_table(demos, title=f"demonstrations — {title}" if title else ""))

    def relevance_note(self, found) -> None:
        """A dim line when an aligned message got nothing because it is not about values (/demos says more)."""
        relevance = getattr(found, "relevance", None)
        if relevance is not None and not relevance.inject and self.session.align_enabled:
            self.info(f"(no demonstrations: {relevance.summary()}; /demos explains)")

    def banner(self) -> None:
        if self.plain:
            return
        self.console.print(f"[bold]selfalign chat[/] — model [cyan]{self.model}[/] — {self.session.description}"
                           + (" — [yellow]compare[/]" if self.compare else ""), highlight=False)
        self.console.print("[dim]/help for commands · Ctrl-C stops an answer · Ctrl-D or /quit leaves[/]")

    # ------------------------------------------------------------------ turns

    def _language_note(self, text: str) -> None:
        """Once per session: the embedded models are tiny and English-only; say where to go instead."""
        from ..chat.language import english_only_note, looks_english
        from ..models.registry import is_embedded

        if self._noted_language or not is_embedded(self.model) or looks_english(text):
            return
        self._noted_language = True
        self.info(english_only_note(self.model))

    def turn(self, text: str) -> bool:
        """Answer one message; False when it was interrupted with Ctrl-C."""
        self._language_note(text)
        if self.compare:
            return self._compare(text)
        wrap = None

        def on_demos(found) -> None:
            nonlocal wrap
            if self.show_demos and found:
                self.demos(found, self.session.description)
            self.relevance_note(found)
            if not self.plain:
                from rich.text import Text

                from ..chat.render import WordWrap

                # Shown before the model answers, so a slow first token still has feedback.
                prefix = Text.assemble(("assistant", "bold magenta"), "> ")
                self.console.print(prefix, end="")
                wrap = WordWrap(self._write, self._width, column=prefix.cell_len)

        def on_delta(delta: str) -> None:
            if wrap is None:
                self._write(delta)
            else:
                wrap.feed(delta)

        try:
            turn = self.session.ask(text, on_delta=on_delta, on_demos=on_demos)
        finally:
            if wrap is not None:
                wrap.finish()
        if self.plain:
            self._write("\n")
        else:
            self.console.print(" [dim]⏹ stopped[/]" if turn.interrupted else "")
        return not turn.interrupted

    def _width(self) -> int:
        """The terminal's width now (a resize shows at once; $COLUMNS, which rich prefers, may be stale)."""
        try:
            return os.get_terminal_size(self.out.fileno()).columns or self.console.width
        except (AttributeError, ValueError, OSError):
            return self.console.width

    def _compare(self, text: str) -> bool:
        if self.plain:
            return self._compare_plain(text)
        from rich.live import Live
        from rich.panel import Panel
        from rich.table import Table

        answers = {"unaligned": "", "aligned": ""}
        title = {"unaligned": "unaligned", "aligned": f"aligned — {self.session.aligner.profile.name}"}

        def view():
            grid = Table.grid(expand=True, padding=(0, 1))
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            grid.add_row(*(Panel(answers[w] or "…", title=title[w], title_align="left",
                                 border_style="cyan" if w == "aligned" else "white") for w in answers))
            return grid

        def on_demos(found) -> None:
            if self.show_demos and found:
                self.demos(found, self.session.aligner.profile.description)
            self.relevance_note(found)

        # Printing through the console while Live runs puts the demonstrations above the panels.
        with Live(view(), console=self.console, refresh_per_second=12, vertical_overflow="visible") as live:
            def on_delta(which: str, delta: str) -> None:
                answers[which] += delta
                live.update(view())

            result = self.session.compare(text, on_delta=on_delta, on_demos=on_demos)
            live.update(view(), refresh=True)
        if result.interrupted:
            self.console.print("[dim]⏹ stopped[/]")
        return not result.interrupted

    def _compare_plain(self, text: str) -> bool:
        order = ("unaligned", "aligned")
        state = {"at": -1}

        def reach(which: str) -> None:
            # Headings in order even when a side streams no text at all.
            while state["at"] < order.index(which):
                state["at"] += 1
                self._write(("\n\n" if state["at"] else "") + f"{order[state['at']]}:\n")

        def on_delta(which: str, delta: str) -> None:
            reach(which)
            self._write(delta)

        def on_demos(found) -> None:
            if self.show_demos and found:
                self.demos(found, self.session.aligner.profile.description)
            self.relevance_note(found)

        result = self.session.compare(text, on_delta=on_delta, on_demos=on_demos)
        reach("aligned")
        self._write("\n")
        return not result.interrupted

    # ------------------------------------------------------------------ commands

    def command(self, line: str) -> bool:
        """Run a slash command; False when it asks to quit."""
        res = self.session.command(line)
        if res.action == "quit":
            return False
        if res.action == "error":
            self.error(res.message)
        elif res.action == "help":
            if self.plain:
                self._write(res.message + "\n")
            else:
                self.console.print(res.message, markup=False)
        elif res.action == "demos" and res.demonstrations:
            self.demos(res.demonstrations, res.message)
        else:
            self.info(res.message)
        return True

    # ------------------------------------------------------------------ loops

    def _messages(self, lines: Iterable[str]) -> Iterator[str]:
        """The messages to answer among ``lines``: blank lines are skipped, slash commands are run
        here, and one that asks to quit ends the iteration."""
        for line in lines:
            text = line.strip()
            if not text:
                continue
            if not self.session.is_command(text):
                yield text
            elif not self.command(text):
                return

    def _typed(self) -> Iterator[str]:
        """Lines typed at the prompt until Ctrl-D or Ctrl-C."""
        prompt = _PROMPT_PLAIN if self.plain else _PROMPT_TTY
        while True:
            try:
                yield input(prompt)
            except (EOFError, KeyboardInterrupt):
                self._write("\n")
                return

    def interactive(self) -> None:
        from ..errors import ChatBackendError

        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        self.banner()
        for text in self._messages(self._typed()):
            try:
                self.turn(text)
            except ChatBackendError as e:
                self._write("\n")
                self.error(str(e))
            except KeyboardInterrupt:
                # Ctrl-C just before or after streaming (while aligning, say) also only stops this turn.
                self.info("⏹ stopped")

    def lines(self, source: TextIO) -> None:
        """Answer each non-empty line (slash commands work too); a backend error ends the run."""
        for i, text in enumerate(self._messages(source)):
            if i and self.plain:
                self._write("\n")
            if not self.turn(text):
                raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    @app.command()
    @align_flags(help={"country": "ISO code or name, e.g. ro, ROU, Romania.",
                       "language": "Demonstration language, or auto (default: each message's language; others "
                                   "get English).",
                       "k": "Demonstrations per message.",
                       "profile": "A personal value profile (YAML/JSON), e.g. from `selfalign profiles "
                                  "questionnaire`; replaces the country."})
    def chat(
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Any litellm model, e.g. gpt-4o-mini, "
                                            "anthropic/claude-3-5-haiku-latest, ollama/llama3.1 (default: the embedded "
                                            "English-only local/smollm2-135m-instruct, no API key)."),
        show_demos: bool = typer.Option(False, "--show-demos", help="Show the injected demonstrations every turn."),
        no_align: bool = typer.Option(False, "--no-align", help="Send messages unchanged (a baseline)."),
        compare: bool = typer.Option(False, "--compare", help="Show the unaligned and the aligned answer side "
                                     "by side."),
        message: Optional[str] = typer.Option(None, "--message", help="Answer this one message and exit."),
        max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="Most tokens per answer."),
        temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, help="Sampling temperature "
                                                    "(default: the model's)."),
        api_base: Optional[str] = typer.Option(None, "--api-base", help="Base URL of an OpenAI-compatible or "
                                               "other provider endpoint."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling and the random strategies."),
        options=None,
    ) -> None:
        """Chat with an LLM aligned to a country's (or your) values, message by message.

        Interactive in a terminal; answers --message once, or each line piped on stdin.
        """
        from ..chat.backends import litellm_backend, preload_model
        from ..chat.session import ChatSession
        from ..models.provider import DEFAULT_MODEL
        from . import fail

        country, profile = options.country, options.profile
        if compare and country is None and profile is None:
            raise fail("--compare needs --country or --profile")
        if country is None and profile is None and not no_align:
            raise fail("give --country (e.g. --country ro) or --profile FILE, or --no-align")
        model = model or DEFAULT_MODEL

        # Bad settings fail before the slow model set-up (importing litellm, loading a model).
        session = ChatSession(None, **options.options(), align=not no_align, seed=seed)
        if country is not None and profile is None and not no_align:
            from ..data.coverage import coverage_warning_once

            if (warning := coverage_warning_once(country)):
                print(f"selfalign: warning: {warning}", file=sys.stderr)
        session.complete = litellm_backend(model, max_tokens=max_tokens, temperature=temperature,
                                           api_base=api_base, seed=seed)
        preload_model(model)

        plain = not sys.stdout.isatty()
        term = ChatTerminal(session, plain=plain, show_demos=show_demos, compare=compare, model=model)
        try:
            if message is not None:
                if not message.strip():
                    raise fail("--message is empty")
                if not term.turn(message.strip()):
                    raise typer.Exit(130)
            elif not sys.stdin.isatty():
                term.lines(sys.stdin)
            else:
                term.interactive()
        except KeyboardInterrupt:
            raise typer.Exit(130)
