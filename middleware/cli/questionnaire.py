"""``selfalign profiles questionnaire``: answer the WVS probes yourself and get a personal value profile.

In a terminal each answer is one key press (1/2 answer, s skip, b back, q save
and quit); piped input gives one answer per line. Whatever was answered is
saved on q, at the end of the input, on Ctrl-C and after the last probe.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, Optional, Sequence

import typer
from rich.text import Text

__all__ = ["Questionnaire", "register"]

_KEYS = {"1": "1", "2": "2", "s": "s", "skip": "s", "b": "b", "back": "b", "q": "q", "quit": "q"}
_HINT = "1/2 answer · s skip · b back · q save & quit"


class Questionnaire:
    """Where a person is in the probes and what they answered (probe id -> option index 0/1).

    ``answers`` may hold answers to probes outside ``probes`` (from an earlier
    run); they are kept and saved along with the new ones.
    """

    def __init__(self, probes: Sequence, answers: dict[str, int] | None = None):
        self.probes = list(probes)
        self.answers = dict(answers or {})
        self.pos = 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.probes)

    @property
    def current(self):
        return None if self.done else self.probes[self.pos]

    @property
    def progress(self) -> str:
        return f"{min(self.pos + 1, len(self.probes))}/{len(self.probes)}"

    def press(self, key: str) -> str:
        """Apply one key: returns answered, skipped, back, quit or invalid."""
        key = _KEYS.get(key.strip().lower(), "")
        if key == "q":
            return "quit"
        if key == "b":
            self.pos = max(0, self.pos - 1)
            return "back"
        if self.done or not key:
            return "invalid"
        if key == "s":
            self.pos += 1
            return "skipped"
        self.answers[self.current.id] = int(key) - 1
        self.pos += 1
        return "answered"


# ---------------------------------------------------------------------- input


@contextlib.contextmanager
def _cbreak(fd: int) -> Iterator[None]:
    """Single key presses without Enter; Ctrl-C still raises KeyboardInterrupt."""
    import termios
    import tty

    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _keys(fd: int) -> Iterator[str]:
    while True:
        ch = os.read(fd, 1)
        if not ch or ch == b"\x04":  # Ctrl-D quits (and saves) like q
            yield "q"
            return
        if ch == b"\x1b":
            # Arrow keys and the like arrive as escape sequences: swallow them.
            with contextlib.suppress(OSError):
                os.set_blocking(fd, False)
                try:
                    os.read(fd, 16)
                finally:
                    os.set_blocking(fd, True)
            continue
        yield ch.decode("utf-8", "replace")


def _lines(stream) -> Iterator[str]:
    for line in stream:
        yield line.strip()
    yield "q"


# ---------------------------------------------------------------------- display


class _View:
    def __init__(self, plain: bool, keys: bool):
        from rich.console import Console

        self.plain = plain
        self.keys = keys
        self.console = Console(highlight=False, force_terminal=False if plain else None, no_color=plain or None)

    def probe(self, q: Questionnaire) -> None:
        p = q.current
        previous = q.answers.get(p.id)
        if self.plain:
            now = f"  (answered: {p.options[previous]})" if previous is not None else ""
            print(f"[{q.progress}] {p.id} · {p.category}\n{p.question}\n  1) {p.options[0]}   2) {p.options[1]}{now}")
            if not self.keys:
                print(f"({_HINT}) > ", end="", flush=True)
            return
        self.console.print()
        self.console.print(Text.assemble((f" {q.progress} ", "bold reverse"), "  ", (p.category, "dim"),
                                         (f" · {p.id}", "dim")))
        self.console.print(Text(p.question, style="bold"))
        options = Text.assemble("  ", ("1", "bold cyan"), f") {p.options[0]}    ", ("2", "bold cyan"),
                                f") {p.options[1]}")
        if previous is not None:
            options.append(f"    (answered: {p.options[previous]})", style="green")
        self.console.print(options)
        self.console.print(Text(f"{_HINT} › ", style="dim"), end="")

    def echo(self, q: Questionnaire, outcome: str, probe, key: str) -> None:
        if not self.keys:
            if not sys.stdin.isatty():
                # Piped answers are not echoed by a terminal; show them so the log reads as a transcript.
                print(key)
            return
        if outcome == "answered":
            text = f"→ {probe.options[q.answers[probe.id]]}"
        else:
            text = {"skipped": "→ skipped", "back": "← back", "quit": "→ save & quit"}[outcome]
        self.console.print(text, markup=False, style=None if self.plain else "dim")

    def invalid(self, key: str) -> None:
        if self.keys:
            # A stray key (Enter, a letter) keeps the same question; a bell says so.
            if key.strip():
                self.console.file.write("\a")
                self.console.file.flush()
            return
        if not sys.stdin.isatty():
            print(key)
        print(f"selfalign: {key!r} is not an answer: use 1, 2, s, b or q", file=sys.stderr)
        if not self.plain:
            self.console.print(Text(f"{_HINT} › ", style="dim"), end="")
        else:
            print(f"({_HINT}) > ", end="", flush=True)

    def say(self, text: str) -> None:
        if self.plain:
            print(text, flush=True)
        else:
            self.console.print(text, markup=False)


# ---------------------------------------------------------------------- saving


def _existing_answers(path: Path, language: str) -> tuple[dict[str, int], str | None]:
    """Answers already in ``path`` (probe id -> 0/1) and its name, so a run continues a profile."""
    import yaml

    from ..data.countries import resolve_language
    from ..errors import ProfileError
    from ..data.probes import load_probes
    from ..data.user_profile import load_user_profile

    load_user_profile(path)  # validates, with messages naming the file and entry
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data.get("statements"):
        raise ProfileError(f"{path}: has free-text statements that the questionnaire would drop; "
                           f"use another --out")
    if resolve_language(data.get("language", "en")) != language:
        raise ProfileError(f"{path}: answered in {data.get('language')!r}, not {language!r}; "
                           f"use --language {data.get('language')} or another --out")
    probes = {p.id: p for p in load_probes(language)}
    found = {}
    for a in data.get("answers") or []:
        opt = a["option"]
        found[str(a["probe"])] = opt - 1 if isinstance(opt, int) else probes[str(a["probe"])].options.index(opt)
    return found, data.get("name")


def _save(path: Path, q: Questionnaire, all_probes: Sequence, language: str, name: str | None,
          view: _View) -> bool:
    from ..data.user_profile import save_user_profile

    if not q.answers:
        view.say(f"nothing answered; {path} not written")
        return False
    order = {p.id: i for i, p in enumerate(all_probes)}
    answers = dict(sorted(q.answers.items(), key=lambda kv: order.get(kv[0], len(order))))
    save_user_profile(path, answers, language=language, name=name)
    n = len(answers)
    view.say(f"saved {n} answer{'' if n == 1 else 's'} to {path} — use it with: selfalign chat --profile {path}")
    return True


def register(app: typer.Typer) -> None:
    from .profiles import profiles_app

    @profiles_app.command("questionnaire")
    def questionnaire(
        out: Path = typer.Option(..., "--out", "-o", help="Profile file to write (YAML), e.g. me.yaml. If it "
                                 "exists, its answers are kept and the run continues it."),
        language: str = typer.Option("en", "--language", "-l", help="Language of the probes."),
        limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Ask at most N probes."),
        category: Optional[str] = typer.Option(None, "--category", help="Only probes whose WVS category "
                                               "contains this text, e.g. 'ethical'."),
        name: Optional[str] = typer.Option(None, "--name", help="Profile name (default: the file name)."),
        restart: bool = typer.Option(False, "--restart", help="Ignore the answers already in --out."),
    ) -> None:
        """Answer the value probes yourself (1/2, s skip, b back, q save & quit) to get a personal profile.

        Piped input works too: one answer per line.
        """
        from ..data.countries import resolve_language
        from ..data.probes import load_probes
        from . import fail

        lang = resolve_language(language)
        all_probes = load_probes(lang)
        probes = all_probes
        if category:
            probes = [p for p in probes if category.lower() in p.category.lower()]
            if not probes:
                cats = sorted({p.category for p in all_probes})
                raise fail(f"no probes in category {category!r}; categories: {', '.join(cats)}")
        if out.is_dir():
            raise fail(f"--out {out}: is a folder; give a file such as {out / 'me.yaml'}")
        answers, old_name = ({}, None) if restart or not out.exists() else _existing_answers(out, lang)
        todo = [p for p in probes if p.id not in answers]
        if limit is not None:
            todo = todo[:limit]
        q = Questionnaire(todo, answers)
        keys = sys.stdin.isatty()
        try:
            import termios  # noqa: F401
        except ImportError:
            keys = False
        view = _View(plain=not sys.stdout.isatty(), keys=keys)
        if answers:
            view.say(f"continuing {out}: {len(answers)} answers kept, {len(todo)} probes to go")
        if not todo:
            view.say("no probes left to answer")
        interrupted = False
        try:
            with _cbreak(sys.stdin.fileno()) if keys else contextlib.nullcontext():
                source = _keys(sys.stdin.fileno()) if keys else _lines(sys.stdin)
                while not q.done:
                    view.probe(q)
                    probe = q.current
                    while (outcome := q.press(key := next(source))) == "invalid":
                        view.invalid(key)
                    view.echo(q, outcome, probe, key)
                    if outcome == "quit":
                        break
        except KeyboardInterrupt:
            interrupted = True
            view.say("")
        _save(out, q, all_probes, lang, name or old_name, view)
        if interrupted:
            raise typer.Exit(130)
