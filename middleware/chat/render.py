"""How the chat shows things: demonstrations (plain or as a rich table), answers wrapped between words,
and answers that end with a whole sentence.

A terminal wraps long lines at its edge, cutting words in two ("indivi" / "dual"); :class:`WordWrap`
breaks streamed text only between words instead, at the terminal's width of the moment.
:func:`whole_sentences` drops the half sentence an answer stopped by the token limit would end with.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..retrieval.demonstration import Demonstration
from ..retrieval.relevance import Relevance

__all__ = ["WordWrap", "demos_plain", "demos_table", "not_injected_note", "sentence_end", "whole_sentences"]

# A sentence ends at . ! ? or … (then closing quotes or brackets) before whitespace, or at a line break.
_END = re.compile(r"""[.!?…]["'”’)\]*]*(?=\s|$)|\n""")


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


class WordWrap:
    """Streamed text written to a terminal with line breaks only between words.

    A word is held back until the whitespace after it arrives (or :meth:`finish`), then written
    on the current line if it fits, else on a new one.  ``width()`` is asked at every word, so
    after a resize the next words follow the new width; lines already shown are never rewritten
    (a redraw would garble an answer taller than the screen).  Only a word wider than the whole
    line is cut.  ``column`` is where the cursor starts (after an ``assistant>`` prefix, say).
    """

    def __init__(self, write: Callable[[str], Any], width: Callable[[], int], column: int = 0):
        self._write_out, self._width = write, width
        self.column = column
        self._word = ""
        self._space = ""
        self._soft = False  # the current line began at a break of ours: its leading spaces are dropped

    def feed(self, text: str) -> None:
        out: list[str] = []
        for ch in text:
            if ch == "\n":
                self._place(out)
                out.append("\n")
                self.column, self._space, self._soft = 0, "", False
            elif ch.isspace():
                self._place(out)
                self._space += " "
            else:
                self._word += ch
        if out:
            self._write_out("".join(out))

    def finish(self) -> None:
        """Write the word held back; the cursor stays after it."""
        out: list[str] = []
        self._place(out)
        self._space = ""
        if out:
            self._write_out("".join(out))

    def _place(self, out: list[str]) -> None:
        from rich.cells import cell_len

        word, self._word = self._word, ""
        if not word:
            return
        width = max(1, self._width())
        space = "" if self.column == 0 and self._soft else self._space
        self._space = ""
        if self.column > 0 and self.column + cell_len(space) + cell_len(word) > width:
            out.append("\n")
            self.column, space, self._soft = 0, "", True
        if cell_len(space) + cell_len(word) > width - self.column:
            space = ""  # indentation that does not fit
        out.append(space)
        self.column += cell_len(space)
        for ch in word:  # only a word wider than the line is cut, at the edge
            w = cell_len(ch)
            if self.column + w > width and self.column > 0:
                out.append("\n")
                self.column, self._soft = 0, True
            out.append(ch)
            self.column += w


def sentence_end(text: str) -> int:
    """Where the last whole sentence (or line) of ``text`` ends; 0 when there is none."""
    ends = [m.end() for m in _END.finditer(text)]
    return ends[-1] if ends else 0


def whole_sentences(deltas: Iterable[tuple[str, str | None, int]], max_tokens: int,
                    margin: int = 64) -> Iterator[str]:
    """The text of streamed ``(text, finish_reason, tokens so far)`` deltas, ending with a whole sentence
    when the answer was stopped by the token limit (finish reason "length").

    Text streams through as it comes until the last ``margin`` tokens before ``max_tokens`` (at most
    half of them); from there on, what follows the last sentence end is held back until the sentence
    is complete, and dropped if the limit cuts it.  A half sentence that began before that stretch is
    shown to its end: it was already partly on screen.  This is for display: the proxy returns what the
    model wrote.
    """
    stretch = max_tokens - min(margin, max_tokens // 2)
    held, reason, clean = "", None, False  # clean: what was shown so far ends a sentence
    for text, reason, tokens in deltas:
        held += text
        if reason is not None:
            break
        cut = len(held) if tokens < stretch else sentence_end(held)
        if cut:
            piece, held = held[:cut], held[cut:]
            if piece.strip():
                clean = sentence_end(piece.rstrip()) == len(piece.rstrip())
            yield piece
    if reason == "length" and (cut := sentence_end(held) or (0 if clean else len(held))) < len(held):
        held = held[:cut]
    if held:
        yield held


def not_injected_note(relevance: Relevance) -> str:
    """One line on why a message got no demonstrations (the chat's dim note, /demos)."""
    if relevance.inject:
        return "no statement of the profile matched the last message"
    return (f"nothing injected for the last message: {relevance.summary()}; only messages about values get "
            "demonstrations")
