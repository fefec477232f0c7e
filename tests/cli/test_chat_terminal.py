"""The real `selfalign chat` program: in a pseudo-terminal (pexpect), one-shot, piped, and without an API key.

These use the embedded Gemma 3 270M with a few tokens per answer. A cold model
cache means a one-time GGUF conversion (about a minute), done in-process by the
session fixture so that no subprocess times out on it.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

from processes import spawn_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "\x1b[1;36myou\x1b[0m> "
ASSISTANT = "assistant\x1b[0m> "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TIMEOUT = 180


@pytest.fixture(scope="module")
def warm_model():
    """Load (and for the transformers runtime, convert and cache) the default model once."""
    from middleware.models.loading import get_local_model

    get_local_model()


def env(**extra):
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
         "PYTHONUNBUFFERED": "1", "TERM": "xterm-256color", "COLUMNS": "120"}
    e.pop("NO_COLOR", None)
    # On a small shared machine two torch threads per process oversubscribe the cores and
    # make the first token many times slower; one thread keeps these tests quick.
    e.setdefault("OMP_NUM_THREADS", "1")
    e.update(extra)
    return e


def run(args, stdin=None, **kw):
    return subprocess.run([sys.executable, "-m", "middleware", *args], input=stdin, capture_output=True,
                          text=True, timeout=TIMEOUT, cwd=ROOT, env=env(**kw))


def spawn(args):
    return spawn_cli(args, ROOT, env(), TIMEOUT, (50, 120))


def read_answer(child):
    """What the assistant streams after its prefix, as (chunks as read, full text)."""
    child.expect_exact(ASSISTANT)
    chunks, buf = [], ""
    while PROMPT not in buf:
        piece = child.read_nonblocking(4096, timeout=TIMEOUT)
        chunks.append(piece)
        buf += piece
    return chunks, buf[:buf.index(PROMPT)]


@pytest.mark.slow
def test_interactive_chat_in_a_terminal(warm_model):
    child = spawn(["chat", "--country", "ro", "--language", "en", "--max-tokens", "8", "--temperature", "0"])
    try:
        child.expect_exact(PROMPT)
        assert "WVS Wave 7 majority answers of Romania" in ANSI.sub("", child.before)

        child.sendline("Is family important in your life?")
        chunks, answer = read_answer(child)
        text = ANSI.sub("", answer).strip()
        assert text and "stopped" not in text
        # Streamed: the answer arrived over several terminal reads, not in one piece.
        assert len([c for c in chunks if ANSI.sub("", c).strip()]) >= 2, chunks

        child.sendline("/demos")
        child.expect_exact(PROMPT)
        shown = ANSI.sub("", child.before)
        assert "demonstrations — WVS Wave 7 majority answers of Romania" in shown and "chrF++" in shown
        # k is a maximum: statements far below the best are left out (middleware/retrieval/aligner.py, FLOOR)
        assert 1 <= len(re.findall(r"^\s*[1-5] .*\bQ\d+", shown, re.M)) <= 5

        # Ctrl-C while the model is answering stops that answer only.
        child.sendline("Should a mother work for pay?")
        child.expect_exact(ASSISTANT)
        child.sendintr()
        child.expect_exact("stopped")
        child.expect_exact(PROMPT)

        child.sendline("/country de")
        child.expect_exact("Germany")
        child.expect_exact(PROMPT)
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


@pytest.mark.slow
def test_compare_in_a_terminal_and_ctrl_d_quits(warm_model):
    child = spawn(["chat", "--country", "ro", "--language", "en", "--max-tokens", "4", "--compare"])
    try:
        child.expect_exact(PROMPT)
        child.sendline("Is religion important?")
        child.expect_exact(PROMPT)
        panels = ANSI.sub("", child.before)
        assert "unaligned" in panels and "aligned — rou-en" in panels and "╭" in panels
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


@pytest.mark.slow
def test_one_shot_message_is_plain(warm_model):
    t = time.monotonic()
    p = run(["chat", "--country", "ro", "--language", "en", "--max-tokens", "8", "--temperature", "0",
             "--show-demos", "--compare", "--message", "Is divorce justifiable?"])
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "\x1b" not in out and "[bold" not in out
    assert out.startswith("demonstrations (WVS Wave 7 majority answers of Romania, probes in English):\n"
                          "  (language: en)\n  1. [")
    assert "Divorce is" in out
    assert "\nunaligned:\n" in out and "\n\naligned:\n" in out and out.endswith("\n")
    assert out.split("\nunaligned:\n")[1].split("\n\naligned:\n")[0].strip()  # the model said something
    assert time.monotonic() - t < TIMEOUT


@pytest.mark.slow
def test_piped_lines_are_answered_one_by_one(warm_model):
    p = run(["chat", "--country", "ro", "--language", "en", "--max-tokens", "6", "--temperature", "0"],
            stdin="Is divorce ever justifiable?\n\n/demos\nIs work a duty?\n")
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout and "Traceback" not in p.stderr
    first, rest = p.stdout.split("demonstrations (", 1)
    assert first.strip()  # the first answer
    # the language line and up to five demonstrations (k is a maximum), then the second answer
    assert 2 <= rest.count("\n  ") <= 6 and "(language: en)" in rest and rest.strip().splitlines()[-1].strip()


def _shown_lines(child):
    """The answer's lines as the terminal shows them: the prefix and the text, escape codes removed."""
    _, answer = read_answer(child)
    return ("assistant> " + ANSI.sub("", answer)).rstrip().split("\r\n")


@pytest.mark.slow
def test_answers_wrap_between_words_at_any_width(warm_model):
    """At 40 columns no line reaches past the edge (so the terminal never cuts a word) and the words are
    the model's own, none split; after a resize to 28 columns the next answer follows the new width."""
    question, args = "Why is the sky blue?", ["chat", "--no-align", "--max-tokens", "60", "--temperature", "0"]
    plain = run([*args, "--message", question])
    assert plain.returncode == 0, plain.stderr
    child = spawn_cli(args, ROOT, env(COLUMNS="40"), TIMEOUT, (50, 40))
    try:
        child.expect_exact(PROMPT)
        child.sendline(question)
        lines = _shown_lines(child)
        assert len(lines) >= 3 and all(len(line) <= 40 for line in lines), lines
        assert " ".join(lines).split()[1:] == plain.stdout.split()

        child.setwinsize(50, 28)
        child.sendline("/reset")  # the same question from the same (empty) history: the same answer
        child.expect_exact(PROMPT)
        child.sendline(question)
        lines = _shown_lines(child)
        assert all(len(line) <= 28 for line in lines) and max(map(len, lines)) > 20, lines
        assert " ".join(lines).split()[1:] == plain.stdout.split()
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()


def test_other_languages_get_one_note_about_the_english_only_model(warm_model):
    p = run(["chat", "--country", "ro", "--max-tokens", "4", "--temperature", "0"],
            stdin="Este important ca femeile să lucreze?\nCe părere ai despre religie?\nIs work a duty?\n")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("only writes English") == 1 and "--model ollama/" in p.stderr
    assert "only writes English" not in p.stdout  # piped answers stay clean
    english = run(["chat", "--country", "us", "--max-tokens", "4", "--temperature", "0",
                   "--message", "Is work a duty?"])
    assert english.returncode == 0 and "only writes English" not in english.stderr


def test_missing_api_key_is_one_line_exit_2():
    e = env()
    e.pop("OPENAI_API_KEY", None)
    p = subprocess.run([sys.executable, "-m", "middleware", "chat", "--country", "ro", "--model",
                        "openai/gpt-4o-mini", "--message", "hi"], capture_output=True, text=True,
                       timeout=TIMEOUT, cwd=ROOT, env=e)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "OPENAI_API_KEY" in p.stderr and p.stderr.startswith("selfalign: error:")
    assert p.stdout == ""


@pytest.mark.parametrize("args,needle", [
    (["chat", "--message", "hi"], "give --country"),
    (["chat", "--country", "zz", "--message", "hi"], "unknown country 'zz'"),
    (["chat", "--no-align", "--compare", "--message", "hi"], "--compare needs"),
    (["chat", "--country", "ro", "--profile", "/nonexistent/me.yaml", "--message", "hi"], "cannot read profile"),
])
def test_bad_settings_fail_fast(args, needle):
    p = run(args)
    assert p.returncode == 2 and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1
