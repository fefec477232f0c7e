"""The injection formats registry: how the chosen statements are written into a request."""

from __future__ import annotations

import pytest

from middleware import SelfAligner
from middleware.data.countries import PAPER_PAIRS
from middleware.errors import InputError
from middleware.options import AlignOptions, json_schema
from middleware.retrieval.formats import (DEFAULT_FORMAT, FORMATS, NATIVE_HEADERS, Injection, get_format,
                                          register_format)

ASK = [{"role": "system", "content": "Be brief."},
       {"role": "user", "content": "Should men have more right to a job than women?"}]


def _aligned(fmt: str, **kw) -> tuple[list[dict], list]:
    return SelfAligner(country="ro", language="en", k=3, format=fmt, min_relevance=0, **kw).align_with_demonstrations(ASK)


def test_default_is_todays_block_byte_for_byte():
    assert DEFAULT_FORMAT == "bullets" and AlignOptions().format == "bullets"
    messages, demos = _aligned("bullets")
    expected = ("The following statements reflect the values of people in Romania. Let them guide your answer:\n"
                + "\n".join(f"- {d.text}" for d in demos) + "\n\nBe brief.")
    assert messages[0] == {"role": "system", "content": expected}
    assert messages[1:] == ASK[1:]


def test_every_format_writes_the_same_statements_differently():
    systems = {}
    for name in FORMATS:
        messages, demos = _aligned(name)
        assert len(demos) == 3
        text = "\n".join(str(m["content"]) for m in messages)
        if name != "items":  # items writes each statement as its item and answer (tested below)
            assert all(d.text in text for d in demos), name  # each statement reaches the model
        assert messages[-1] == ASK[-1]  # the user's message stays last and unchanged
        systems[name] = messages[0]["content"]
    # The English-message formats differ from each other (bullets-native equals bullets in English).
    assert len({systems[n] for n in ("bullets", "survey", "shares", "turns", "items")}) == 5


def test_items_are_the_papers_demonstrations_with_the_countrys_answer():
    from middleware.data.probes import load_probes

    probes = {p.id: p for p in load_probes("en")}
    (system, *rest), demos = _aligned("items")
    assert rest == ASK[1:]
    for d in demos:
        probe = probes[d.probe_id]
        answer = next(o for o in probe.options if probe.fill(o) == d.text)
        block = f"Statement: {probe.question}\nOptions: {' / '.join(probe.options)}\nAnswer: {answer}"
        assert block in system["content"]
    assert system["content"].startswith("How people in Romania answered these survey items:")
    # The minority control's statements carry the other answer in the same items.
    from middleware.retrieval.demonstration import Demonstration

    (probe_id, probe), = [(d.probe_id, probes[d.probe_id]) for d in demos[:1]]
    other = next(o for o in probe.options if probe.fill(o) != demos[0].text)
    flipped = Demonstration(probe.fill(other), 1.0, probe_id, probe.category, "en")
    from middleware.retrieval.formats import FormatContext

    ctx = FormatContext(header="", subject="people in Romania", country=None, statement=lambda d: None)
    assert f"Answer: {other}" in get_format("items")([flipped], ctx).system


def test_turns_are_prior_exchanges_before_the_conversation():
    messages, demos = _aligned("turns")
    assert [m["role"] for m in messages] == ["system", *["user", "assistant"] * 3, "user"]
    assert "Be brief." in messages[0]["content"]
    for d, (q, a) in zip(demos, zip(messages[1:-1:2], messages[2:-1:2])):
        assert a["content"] == d.text
        assert "___" in q["content"] and " / " in q["content"]  # the probe asked, with its two options


def test_turns_without_a_system_message():
    messages, _ = SelfAligner(country="ro", language="en", k=2, format="turns", min_relevance=0).align_with_demonstrations(ASK[1:])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]


def test_shares_show_the_majority_share():
    from middleware.data.profile import builtin_profile
    from middleware.data.countries import resolve_country

    messages, demos = _aligned("shares")
    margins = {s.probe_id: s.margin for s in builtin_profile(resolve_country("ro"), "en").statements}
    for d in demos:
        pct = round(100 * (1 + margins[d.probe_id]) / 2)
        assert f'- {pct}% of people in Romania: "{d.text}"' in messages[0]["content"]
        assert 50 <= pct <= 100


def test_native_header_in_the_message_language():
    assert set(NATIVE_HEADERS) == set(PAPER_PAIRS)  # the 14 probe languages
    de = SelfAligner(country="de", language="de", k=2, format="bullets-native")
    block = de.align([{"role": "user", "content": "Sollten Männer eher ein Recht auf Arbeit haben als Frauen?"}])[0]
    assert block["content"].startswith("Die folgenden Aussagen spiegeln die Werte der Menschen im Land Germany")
    en = SelfAligner(country="de", language="de", k=2, format="bullets")
    assert en.system_block(en.demonstrations("Arbeit Frauen Männer")).startswith("The following statements")


def test_cultural_instruction_stays_in_front_of_any_format():
    messages, _ = _aligned("survey", strategy="cultural+chrf")
    assert messages[0]["content"].startswith("You are an average human being born in Romania")
    assert "In the World Values Survey, most people in Romania" in messages[0]["content"]


def test_unknown_format_is_an_input_error_naming_the_valid_ones():
    with pytest.raises(InputError, match="unknown format 'prose'.*bullets.*turns"):
        SelfAligner(country="ro", format="prose")
    with pytest.raises(InputError, match="format"):
        AlignOptions(format="prose")
    assert set(json_schema()["properties"]["format"]["examples"]) == set(FORMATS)


def test_a_registered_format_is_an_option_value():
    @register_format("test-upper")
    def upper(demonstrations, ctx):
        return Injection(" | ".join(d.text.upper() for d in demonstrations))

    try:
        assert get_format("test-upper") is upper
        messages = SelfAligner(**AlignOptions(country="ro", language="en", k=2, format="test-upper", min_relevance=0).options()
                               ).align(ASK[1:])
        assert messages[0]["content"].isupper() and " | " in messages[0]["content"]
    finally:
        FORMATS.pop("test-upper")
