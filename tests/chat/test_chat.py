"""ChatSession and the plain terminal rendering, with a scripted model backend (no model, no network)."""

import copy
import io

import pytest

from middleware.retrieval.aligner import SelfAligner
from middleware.chat.backends import litellm_backend
from middleware.chat.session import ChatSession
from middleware.cli.chat import ChatTerminal
from middleware.errors import ChatBackendError, SelfAlignError
from middleware.data.user_profile import save_user_profile

INTERRUPT = object()


class Scripted:
    """A backend that replays answers delta by delta and records every request.

    An answer is a string (split into words) or a list of deltas; INTERRUPT in
    the list raises KeyboardInterrupt there, as Ctrl-C would inside the model call.
    """

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []
        self.closed = 0

    def __call__(self, messages, stream=True):
        assert stream is True
        self.calls.append(copy.deepcopy(messages))
        answer = self.answers.pop(0) if self.answers else "ok"
        if isinstance(answer, Exception):
            raise answer
        deltas = [w + " " for w in answer.split()] if isinstance(answer, str) else answer
        try:
            for d in deltas:
                if d is INTERRUPT:
                    raise KeyboardInterrupt
                yield d
        finally:
            self.closed += 1


def system_of(messages):
    return messages[0]["content"] if messages and messages[0]["role"] == "system" else None


def session(*answers, **kw):
    kw.setdefault("country", "ro")
    kw.setdefault("language", "en")
    kw.setdefault("min_relevance", 0)  # always k demonstrations; the gate has tests of its own below
    backend = Scripted(*answers)
    return ChatSession(backend, **kw), backend


def test_history_stays_unaligned_and_each_turn_is_aligned_for_its_message():
    s, b = session("Family first.", "Yes, children matter.")
    t1 = s.ask("Is family important in your life?")
    t2 = s.ask("Should a mother work for pay?")
    assert t1.answer == "Family first. " and t2.answer == "Yes, children matter. "
    assert s.history == [
        {"role": "user", "content": "Is family important in your life?"},
        {"role": "assistant", "content": "Family first. "},
        {"role": "user", "content": "Should a mother work for pay?"},
        {"role": "assistant", "content": "Yes, children matter. "},
    ]
    # The second request carries the plain first exchange and demonstrations for the second message only.
    sent = b.calls[1]
    assert sent[1:] == s.history[:3]
    sys_msg = system_of(sent)
    assert "people in Romania" in sys_msg and sys_msg.count("\n- ") == 5
    expected = SelfAligner("ro", language="en").demonstrations("Should a mother work for pay?")
    assert [d.text for d in t2.demonstrations] == [d.text for d in expected]
    assert all(f"- {d.text}" in sys_msg for d in expected)
    assert s.last_demonstrations == t2.demonstrations and t2.messages == sent


def test_alignment_off_sends_the_conversation_unchanged():
    s, b = session("hi", align=False)
    turn = s.ask("Is religion important?")
    assert b.calls[0] == [{"role": "user", "content": "Is religion important?"}]
    assert turn.demonstrations == [] and not turn.aligned
    res = s.command("/demos")
    assert res.action == "demos" and "alignment is off" in res.message and res.demonstrations == []


def test_no_country_needs_align_off():
    with pytest.raises(SelfAlignError, match="country"):
        ChatSession(Scripted())
    s = ChatSession(Scripted("x"), align=False)
    assert s.ask("hello").answer == "x "
    with pytest.raises(SelfAlignError, match="compare needs"):
        s.compare("hello")


def test_system_prompt_is_kept_after_the_demonstrations():
    s, b = session("ok", system="You are terse.")
    s.ask("Is work a duty towards society?")
    sys_msg = system_of(b.calls[0])
    assert sys_msg.endswith("\n\nYou are terse.") and sys_msg.startswith("The following statements")
    assert len(b.calls[0]) == 2


def test_on_demos_comes_before_the_model_call():
    s, b = session("ok")
    seen = []
    s.ask("Is abortion ever justifiable?", on_demos=lambda d: seen.append((len(b.calls), d)))
    assert seen and seen[0][0] == 0 and seen[0][1] == s.last_demonstrations


def test_country_switch_applies_to_the_next_turn():
    s, b = session("a", "b")
    s.ask("Is divorce justifiable?")
    res = s.command("/country de")
    assert res.action == "country" and "Germany" in res.message
    s.ask("Is divorce justifiable?")
    assert "people in Romania" in system_of(b.calls[0])
    assert "people in Germany" in system_of(b.calls[1])
    # The history survives a switch; only the demonstrations change.
    assert b.calls[1][1:3] == s.history[:2]


def test_bad_country_is_an_error_and_keeps_the_old_alignment():
    s, _ = session()
    before = s.aligner
    res = s.command("/country zz")
    assert res.action == "error" and "unknown country 'zz'" in res.message
    assert s.aligner is before
    assert s.command("/country").action == "error"


def test_reset_forgets_the_conversation():
    s, b = session("one", "two")
    s.ask("first question")
    assert s.command("/reset").action == "reset"
    assert s.history == [] and s.last_demonstrations == []
    s.ask("Is God important in your life?")
    assert [m["role"] for m in b.calls[1]] == ["system", "user"]


def test_profile_switch(tmp_path):
    path = save_user_profile(tmp_path / "me.yaml", {"Q1": 1, "Q164": 0}, language="en")
    s, b = session("ok", "ok")
    res = s.command(f"/profile {path}")
    assert res.action == "profile" and "me.yaml" in res.message
    s.ask("Is God important in your life?")
    sys_msg = system_of(b.calls[0])
    assert "the user" in sys_msg and "God is important in my life." in sys_msg
    assert "Family is not important in my life." in sys_msg  # k=5 > 2 statements: both are used
    bad = s.command(f"/profile {tmp_path / 'missing.yaml'}")
    assert bad.action == "error" and "cannot read profile" in bad.message
    assert "me.yaml" in s.description


def test_compare_returns_both_answers_from_the_same_history():
    s, b = session("earlier", "plain answer", "aligned answer")
    s.ask("Hello")
    deltas = []
    res = s.compare("Is homosexuality justifiable?", on_delta=lambda w, d: deltas.append((w, d)))
    assert res.unaligned.answer == "plain answer " and res.aligned.answer == "aligned answer "
    unaligned_req, aligned_req = b.calls[1], b.calls[2]
    assert system_of(unaligned_req) is None and "people in Romania" in system_of(aligned_req)
    assert unaligned_req == aligned_req[1:]
    assert [w for w, _ in deltas] == ["unaligned"] * 2 + ["aligned"] * 2
    assert res.aligned.demonstrations and res.unaligned.demonstrations == []
    # The history goes on with the answer of the session's own (aligned) mode.
    assert s.history[-2:] == [{"role": "user", "content": "Is homosexuality justifiable?"},
                              {"role": "assistant", "content": "aligned answer "}]
    assert s.command("/demos").demonstrations == res.aligned.demonstrations


def test_compare_with_alignment_off_continues_with_the_unaligned_answer():
    s, _ = session("plain", "aligned", align=False)
    s.compare("Is divorce justifiable?")
    assert s.history[-1]["content"] == "plain "


def test_ctrl_c_mid_stream_keeps_the_partial_answer_and_the_session_usable():
    s, b = session(["Hel", "lo", INTERRUPT, "never"], "Second answer")
    t = s.ask("Say hello")
    assert t.interrupted and t.answer == "Hello" and b.closed == 1
    assert s.history[-1] == {"role": "assistant", "content": "Hello"}
    t2 = s.ask("And now?")
    assert not t2.interrupted and t2.answer == "Second answer "
    assert b.calls[1][1:] == [{"role": "user", "content": "Say hello"}, {"role": "assistant", "content": "Hello"},
                              {"role": "user", "content": "And now?"}]


def test_ctrl_c_in_the_reader_closes_the_stream():
    s, b = session(["one ", "two ", "three "])

    def reader(delta):
        if delta == "two ":
            raise KeyboardInterrupt

    t = s.ask("count", on_delta=reader)
    assert t.interrupted and t.answer == "one two " and b.closed == 1


def test_ctrl_c_before_any_text_leaves_no_trace():
    s, _ = session([INTERRUPT], "fine")
    t = s.ask("hello")
    assert t.interrupted and t.answer == "" and s.history == []
    assert s.ask("again").answer == "fine "


def test_ctrl_c_in_compare_stops_both_sides():
    s, b = session(["partial", INTERRUPT], "never used")
    res = s.compare("Is religion important?")
    assert res.interrupted and res.unaligned.answer == "partial" and res.aligned.answer == ""
    assert len(b.calls) == 1 and s.history == []


def test_backend_error_leaves_history_unchanged():
    s, _ = session("ok", ChatBackendError("model x: boom"), "after")
    s.ask("first")
    with pytest.raises(ChatBackendError, match="boom"):
        s.ask("second")
    assert len(s.history) == 2
    assert s.ask("third").answer == "after "


@pytest.mark.parametrize("line,action", [("/help", "help"), ("/quit", "quit"), ("/exit", "quit"),
                                         ("/QUIT", "quit"), ("/nope", "error")])
def test_slash_commands(line, action):
    s, _ = session()
    assert s.is_command(line)
    res = s.command(line)
    assert res.action == action
    if action == "help":
        assert all(c in res.message for c in ("/demos", "/country", "/profile", "/reset", "/quit"))


def test_not_commands():
    assert not ChatSession.is_command("/ just a slash")
    assert not ChatSession.is_command("what about a/b?")


def test_demos_before_and_after_a_turn():
    s, _ = session("ok")
    assert "send a message first" in s.command("/demos").message
    s.ask("Is abortion ever justifiable?")
    res = s.command("/demos")
    assert len(res.demonstrations) == 5 and res.demonstrations[0].probe_id == "Q184"


def test_a_message_not_about_values_is_sent_untouched_and_demos_says_why():
    s, b = session("sorted(xs)", "Often.", min_relevance=0.8)
    turn = s.ask("Write a Python function that sorts a list of numbers.")
    assert b.calls[0] == [{"role": "user", "content": "Write a Python function that sorts a list of numbers."}]
    assert turn.demonstrations == [] and s.last_relevance.inject is False
    why = s.command("/demos").message
    assert "not about values" in why and "only messages about values get demonstrations" in why
    s.ask("Do you think that homosexuality is ever justifiable?")
    assert s.last_relevance.inject and s.last_demonstrations[0].probe_id == "Q182"


def test_terminal_notes_a_message_that_got_nothing(capsys):
    s, _ = session("sorted(xs)", min_relevance=0.8)
    term = ChatTerminal(s, plain=True, out=io.StringIO())
    term.turn("Write a Python function that sorts a list of numbers.")
    assert "(no demonstrations: not about values" in capsys.readouterr().err


# ---------------------------------------------------------------------- plain terminal rendering


def terminal(*answers, **kw):
    s, b = session(*answers)
    out = io.StringIO()
    return ChatTerminal(s, plain=True, out=out, **kw), out, b


def test_plain_turn_with_demos_has_no_markup():
    term, out, _ = terminal("An answer.", show_demos=True)
    assert term.turn("Is abortion ever justifiable?")
    text = out.getvalue()
    assert text.startswith("demonstrations (WVS Wave 7 majority answers of Romania")
    assert "  1. [" in text and "Abortion is" in text and text.endswith("An answer. \n")
    assert "\x1b" not in text and "[bold" not in text


def test_plain_compare_prints_both_blocks():
    term, out, _ = terminal("plain words", "aligned words", compare=True)
    term.turn("Is divorce justifiable?")
    assert out.getvalue() == "unaligned:\nplain words \n\naligned:\naligned words \n"


def test_plain_compare_heads_an_empty_side():
    term, out, _ = terminal([], "aligned", compare=True)
    term.turn("Is divorce justifiable?")
    assert out.getvalue() == "unaligned:\n\n\naligned:\naligned \n"


def test_lines_answer_each_message_and_run_commands(capsys):
    term, out, b = terminal("first answer", "second answer")
    term.lines(io.StringIO("Hello\n\n/country de\nIs divorce justifiable?\n/demos\n/quit\nnever sent\n"))
    text = out.getvalue()
    assert text.startswith("first answer \n\nsecond answer \ndemonstrations (WVS Wave 7 majority answers of Germany")
    assert len(b.calls) == 2 and "Germany" in system_of(b.calls[1])
    assert "now aligned with" in capsys.readouterr().err  # notes stay off stdout


def test_lines_stop_on_ctrl_c():
    term, _, _ = terminal(["x", INTERRUPT], "never")
    with pytest.raises(KeyboardInterrupt):
        term.lines(io.StringIO("one\ntwo\n"))


def test_rich_turn_shows_stop_marker():
    s, _ = session(["Hel", INTERRUPT])
    out = io.StringIO()
    term = ChatTerminal(s, plain=False, out=out)
    assert not term.turn("hi")
    assert "assistant" in out.getvalue() and "stopped" in out.getvalue()


def test_rich_compare_renders_two_panels():
    s, _ = session("left side", "right side")
    out = io.StringIO()
    ChatTerminal(s, plain=False, out=out, compare=True).turn("Is divorce justifiable?")
    text = out.getvalue()
    assert "unaligned" in text and "aligned — rou-en" in text and "left side" in text and "right side" in text


# ---------------------------------------------------------------------- litellm backend


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ChatBackendError, match="OPENAI_API_KEY") as e:
        litellm_backend("openai/gpt-4o-mini")
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_embedded_model_chats_without_litellm():
    # litellm takes seconds to import; the chat on an embedded model must not wait for it.
    from processes import python_prints

    code = ("import sys\n"
            "from middleware.chat import ChatSession, litellm_backend\n"
            "chat = ChatSession(litellm_backend('local/smollm2-135m-instruct', max_tokens=8, temperature=0),\n"
            "                   country='us', language='en')\n"
            "streamed = []\n"
            "turn = chat.ask('Is family important?', on_delta=streamed.append)\n"
            "assert turn.answer and ''.join(streamed) == turn.answer, (streamed, turn.answer)\n"
            "print('litellm' in sys.modules)\n")
    assert python_prints(code) == "False"


def test_unknown_embedded_model_is_a_chat_error():
    complete = litellm_backend("local/no-such-model")
    with pytest.raises(ChatBackendError, match="no-such-model"):
        list(complete([{"role": "user", "content": "hi"}]))
