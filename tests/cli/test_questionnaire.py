"""`selfalign profiles questionnaire`: key presses in a terminal (pexpect), piped answers, and the saved profile."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from middleware.retrieval.aligner import SelfAligner
from middleware.cli.questionnaire import Questionnaire
from middleware.data.probes import load_probes
from middleware.data.user_profile import load_user_profile, save_user_profile
from processes import spawn_cli

ROOT = Path(__file__).resolve().parents[2]
PROBES = load_probes("en")
TIMEOUT = 60


def env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "xterm-256color", "COLUMNS": "120"}


def run(args, stdin=""):
    return subprocess.run([sys.executable, "-m", "middleware", "profiles", "questionnaire", *args], input=stdin,
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, env=env())


def answers_in(path):
    return {a["probe"]: a["option"] for a in yaml.safe_load(Path(path).read_text())["answers"]}


# ---------------------------------------------------------------------- the state machine


def test_keys_answer_skip_back_quit():
    q = Questionnaire(PROBES[:3])
    assert q.progress == "1/3" and q.current.id == PROBES[0].id
    assert q.press("2") == "answered" and q.answers == {PROBES[0].id: 1} and q.progress == "2/3"
    assert q.press("s") == "skipped" and q.progress == "3/3"
    assert q.press("b") == "back" and q.current.id == PROBES[1].id
    assert q.press("x") == "invalid" and q.press("") == "invalid" and q.progress == "2/3"
    assert q.press("1") == "answered" and q.press("B") == "back" and q.press("2") == "answered"
    assert q.answers == {PROBES[0].id: 1, PROBES[1].id: 1}
    assert q.press("1") == "answered" and q.done and q.current is None
    assert q.press("1") == "invalid" and q.press("q") == "quit"


def test_back_at_the_start_stays_there():
    q = Questionnaire(PROBES[:2])
    assert q.press("b") == "back" and q.pos == 0


def test_earlier_answers_are_kept():
    q = Questionnaire(PROBES[5:7], {"Q1": 0})
    q.press("2")
    assert q.answers == {"Q1": 0, PROBES[5].id: 1}


# ---------------------------------------------------------------------- piped input


def test_piped_answers_make_a_profile(tmp_path):
    out = tmp_path / "me.yaml"
    p = run(["--language", "en", "--out", str(out), "--limit", "5"], stdin="1\n2\nhuh\ns\nb\n2\n1\n")
    assert p.returncode == 0, p.stderr
    assert "[1/5]" in p.stdout and "[5/5]" in p.stdout and PROBES[0].question in p.stdout
    assert "'huh' is not an answer" in p.stderr
    ids = [pr.id for pr in PROBES[:5]]
    # 1, 2, (huh ignored), skip, back to the skipped third, 2, then 1 for the fourth; input ends: saved.
    assert answers_in(out) == {ids[0]: 1, ids[1]: 2, ids[2]: 2, ids[3]: 1}
    assert f"saved 4 answers to {out}" in p.stdout
    profile = load_user_profile(out)
    assert profile.name == "me" and len(profile.statements) == 4
    assert PROBES[0].fill(0) in [s.text for s in profile.statements]
    # The profile works where --profile is accepted.
    demos = SelfAligner(profile=out, k=2).demonstrations("Is family important in your life?")
    assert demos[0].text == "Family is important in my life."


def test_quit_keeps_what_was_answered_and_a_rerun_continues(tmp_path):
    out = tmp_path / "me.yaml"
    assert run(["--out", str(out)], stdin="2\nq\n1\n").returncode == 0
    assert answers_in(out) == {PROBES[0].id: 2}
    p = run(["--out", str(out), "--limit", "2"], stdin="1\n1\n")
    assert p.returncode == 0 and "continuing" in p.stdout
    assert f"{PROBES[1].question}" in p.stdout and "[1/2]" in p.stdout
    assert answers_in(out) == {PROBES[0].id: 2, PROBES[1].id: 1, PROBES[2].id: 1}
    p = run(["--out", str(out), "--limit", "1", "--restart"], stdin="1\n")
    assert answers_in(out) == {PROBES[0].id: 1}


def test_category_filter(tmp_path):
    out = tmp_path / "ethics.yaml"
    p = run(["--out", str(out), "--category", "ethical", "--limit", "2"], stdin="1\n1\n")
    assert p.returncode == 0, p.stderr
    ethical = [pr for pr in PROBES if pr.category == "Ethical Values"]
    assert answers_in(out) == {ethical[0].id: 1, ethical[1].id: 1}


def test_other_languages(tmp_path):
    out = tmp_path / "ro.yaml"
    assert run(["--language", "ro", "--out", str(out), "--limit", "1"], stdin="1\n").returncode == 0
    profile = load_user_profile(out)
    assert profile.language == "ro"
    assert profile.statements[0].text == load_probes("ro")[0].fill(0)


def test_nothing_answered_writes_nothing(tmp_path):
    out = tmp_path / "me.yaml"
    p = run(["--out", str(out)], stdin="q\n")
    assert p.returncode == 0 and "nothing answered" in p.stdout and not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--category", "astrology"], "no probes in category 'astrology'"),
    (["--language", "xx"], "unknown language 'xx'"),
])
def test_bad_options_are_one_line(tmp_path, args, needle):
    p = run(["--out", str(tmp_path / "x.yaml"), *args], stdin="1\n")
    assert p.returncode == 2 and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_refuses_to_drop_free_text_statements(tmp_path):
    out = tmp_path / "mine.yaml"
    out.write_text("statements:\n  - text: I value honesty.\n")
    p = run(["--out", str(out)], stdin="1\n")
    assert p.returncode == 2 and "free-text statements" in p.stderr
    assert "honesty" in out.read_text()


def test_continuing_needs_the_same_language(tmp_path):
    out = save_user_profile(tmp_path / "de.yaml", {"Q1": 0}, language="de")
    p = run(["--out", str(out), "--language", "en"], stdin="1\n")
    assert p.returncode == 2 and "--language de" in p.stderr


# ---------------------------------------------------------------------- a real terminal


def spawn(args):
    pytest.importorskip("pexpect")
    return spawn_cli(["profiles", "questionnaire", *args], ROOT, env(), TIMEOUT, (40, 120))


def test_single_key_presses_in_a_terminal(tmp_path):
    import pexpect

    out = tmp_path / "me.yaml"
    child = spawn(["--language", "en", "--out", str(out), "--limit", "4"])
    try:
        child.expect_exact(" 1/4 ")
        child.expect_exact(PROBES[0].question)
        child.expect_exact("1/2 answer · s skip · b back · q save & quit")
        child.send("1")  # no Enter: one key is one answer
        child.expect_exact(f"→ {PROBES[0].options[0]}")
        child.expect_exact(" 2/4 ")
        child.send("s")
        child.expect_exact("→ skipped")
        child.expect_exact(" 3/4 ")
        child.send("x")  # not an answer: same question, nothing recorded
        child.send("b")
        child.expect_exact("← back")
        child.expect_exact(" 2/4 ")
        child.send("2")
        child.expect_exact(" 3/4 ")
        child.send("b")
        child.expect_exact(" 2/4 ")
        child.expect_exact(f"(answered: {PROBES[1].options[1]})")
        child.send("1")  # changes the answer
        child.expect_exact(" 3/4 ")
        child.send("q")
        child.expect_exact("saved 2 answers to")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert answers_in(out) == {PROBES[0].id: 1, PROBES[1].id: 1}
    assert len(load_user_profile(out).statements) == 2


def test_ctrl_c_saves_what_was_answered(tmp_path):
    import pexpect

    out = tmp_path / "me.yaml"
    child = spawn(["--out", str(out)])
    try:
        child.expect_exact(f" 1/{len(PROBES)} ")
        child.send("2")
        child.expect_exact(f" 2/{len(PROBES)} ")
        child.send("1")
        child.expect_exact(f" 3/{len(PROBES)} ")
        child.sendintr()
        child.expect_exact("saved 2 answers")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130
    assert answers_in(out) == {PROBES[0].id: 2, PROBES[1].id: 1}


def test_ctrl_d_in_a_terminal_saves_and_quits(tmp_path):
    import pexpect

    out = tmp_path / "me.yaml"
    child = spawn(["--out", str(out), "--limit", "3"])
    try:
        child.expect_exact(" 1/3 ")
        child.send("1")
        child.expect_exact(" 2/3 ")
        child.sendcontrol("d")
        child.expect_exact("saved 1 answer to")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0 and answers_in(out) == {PROBES[0].id: 1}
