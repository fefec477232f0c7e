"""How the chosen statements are written into a request: a small registry of injection formats.

A format turns the demonstrations into an :class:`Injection`: text for the system message and,
optionally, prior user/assistant turns put before the conversation. Built-ins register the way a
third party would::

    @register_format("my-format")
    def render(demonstrations, ctx): return Injection(system="...")

The strategy's instruction (cultural prompting) is not the format's business: the aligner puts it
in front of whatever the format writes. ``bullets`` is today's block, byte for byte; the others
exist to be measured against it (docs/eval.md, "Injection formats").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from ..errors import InputError
from ..options import provide_choices

if TYPE_CHECKING:
    from ..data.countries import Country
    from ..data.profile import Statement
    from .demonstration import Demonstration

__all__ = ["Injection", "FormatContext", "Format", "FORMATS", "DEFAULT_FORMAT", "DEFAULT_HEADER",
           "NATIVE_HEADERS", "register_format", "get_format"]

DEFAULT_FORMAT = "bullets"
DEFAULT_HEADER = "The following statements reflect the values of {subject}. Let them guide your answer:"

# The default header in each probe language, for the ``bullets-native`` format. The country keeps its
# English name (we hold no localised names), so each sentence is built to take a name in apposition.
NATIVE_HEADERS: dict[str, str] = {
    "en": DEFAULT_HEADER,
    "ro": "Afirmațiile următoare reflectă valorile oamenilor din țara {country}. Lasă-te călăuzit de ele "
          "în răspunsul tău:",
    "el": "Οι παρακάτω δηλώσεις αντικατοπτρίζουν τις αξίες των ανθρώπων στη χώρα {country}. Άφησέ τες να "
          "καθοδηγήσουν την απάντησή σου:",
    "ur": "درج ذیل بیانات ملک {country} کے لوگوں کی اقدار کی عکاسی کرتے ہیں۔ اپنے جواب میں ان سے رہنمائی لیں:",
    "fa": "جمله‌های زیر ارزش‌های مردم کشور {country} را نشان می‌دهند. بگذارید پاسخ شما را راهنمایی کنند:",
    "tl": "Ang mga sumusunod na pahayag ay sumasalamin sa mga pinahahalagahan ng mga tao sa bansang "
          "{country}. Hayaan mong gabayan ng mga ito ang iyong sagot:",
    "id": "Pernyataan berikut mencerminkan nilai-nilai orang di negara {country}. Biarkan pernyataan ini "
          "memandu jawaban Anda:",
    "de": "Die folgenden Aussagen spiegeln die Werte der Menschen im Land {country} wider. Lass dich bei "
          "deiner Antwort von ihnen leiten:",
    "ms": "Pernyataan berikut mencerminkan nilai-nilai orang di negara {country}. Biarkan pernyataan ini "
          "membimbing jawapan anda:",
    "bn": "নিচের বক্তব্যগুলো {country} দেশের মানুষের মূল্যবোধ প্রতিফলিত করে। আপনার উত্তরে এগুলোকে পথ দেখাতে দিন:",
    "sr": "Следеће изјаве одражавају вредности људи у земљи {country}. Нека вас оне воде у одговору:",
    "tr": "Aşağıdaki ifadeler {country} ülkesindeki insanların değerlerini yansıtıyor. Cevabında bunlara "
          "göre hareket et:",
    "vi": "Những nhận định sau phản ánh các giá trị của người dân ở quốc gia {country}. Hãy để chúng định "
          "hướng câu trả lời của bạn:",
    "ko": "다음 진술들은 {country} 국민들의 가치관을 반영합니다. 이를 참고하여 답하세요:",
}


@dataclass(frozen=True)
class Injection:
    """What a format adds to a request."""

    system: str = ""
    """Text for the system message ('' adds none)."""
    turns: tuple[dict, ...] = field(default=())
    """Prior user/assistant messages, put after the system message and before the conversation."""


@dataclass(frozen=True)
class FormatContext:
    """What a format may know besides the demonstrations."""

    header: str
    """The aligner's header template, with a ``{subject}`` slot."""
    subject: str
    """Whose values: "people in Romania", "the user"."""
    country: "Country | None"
    statement: Callable[["Demonstration"], "Statement | None"]
    """The profile statement behind a demonstration (its survey share, its probe), when known."""


class Format(Protocol):
    def __call__(self, demonstrations: Sequence["Demonstration"], ctx: FormatContext) -> Injection:
        """The injection for ``demonstrations`` (never empty), in retrieval order."""


FORMATS: dict[str, Format] = {}


def register_format(name: str) -> Callable[[Format], Format]:
    def deco(fn: Format) -> Format:
        FORMATS[name] = fn
        return fn
    return deco


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise InputError(f"unknown format {name!r}: valid formats are {', '.join(FORMATS)}", param="format") from None


def _bullets(demonstrations: Sequence["Demonstration"]) -> str:
    return "\n".join(f"- {d.text}" for d in demonstrations)


@register_format("bullets")
def bullets(demonstrations, ctx):
    """Today's block: a header naming whose values, then one bullet per statement."""
    return Injection(f"{ctx.header.format(subject=ctx.subject)}\n{_bullets(demonstrations)}")


@register_format("bullets-native")
def bullets_native(demonstrations, ctx):
    """``bullets`` with the header in the demonstrations' language (English for a user profile)."""
    language = demonstrations[0].language
    native = NATIVE_HEADERS.get(language or "")
    if ctx.country is None or native is None:
        return bullets(demonstrations, ctx)
    return Injection(f"{native.format(country=ctx.country.name, subject=ctx.subject)}\n{_bullets(demonstrations)}")


@register_format("survey")
def survey(demonstrations, ctx):
    """The statements as what most people said when the survey asked them."""
    lines = "\n".join(f'- "{d.text}"' for d in demonstrations)
    return Injection(f"In the World Values Survey, most {ctx.subject} gave these answers:\n{lines}")


def _share(ctx: FormatContext, demonstration: "Demonstration") -> float | None:
    s = ctx.statement(demonstration)
    return None if s is None or s.margin is None else (1 + s.margin) / 2


@register_format("shares")
def shares(demonstrations, ctx):
    """Each statement with the share of people who gave that answer ("62% of people in Romania: ...")."""
    lines = []
    for d in demonstrations:
        share = _share(ctx, d)
        lines.append(f'- {round(100 * share)}% of {ctx.subject}: "{d.text}"' if share is not None else f"- {d.text}")
    return Injection(f"How {ctx.subject} answered the World Values Survey:\n" + "\n".join(lines))


@register_format("items")
def items(demonstrations, ctx):
    """The paper's demonstrations in the system message: each statement as its survey item (the sentence with a
    blank, the two options) and the answer the country gave; a statement with no item stays a bullet."""
    blocks = []
    for d in demonstrations:
        probe = _probe_of(d)
        answer = next((o for o in probe.options if probe.fill(o) == d.text), None) if probe is not None else None
        blocks.append(f"- {d.text}" if answer is None else
                      f"Statement: {probe.question}\nOptions: {' / '.join(probe.options)}\nAnswer: {answer}")
    return Injection(f"How {ctx.subject} answered these survey items:\n\n" + "\n\n".join(blocks))


@register_format("turns")
def turns(demonstrations, ctx):
    """Few-shot in chat form: each statement as an earlier exchange, its question asked and answered."""
    out: list[dict] = []
    for d in demonstrations:
        statement = ctx.statement(d)
        probe = _probe_of(d)
        if probe is not None:
            question = f"{probe.question} ({' / '.join(probe.options)})"
        else:
            question = statement.key if statement is not None else d.text
        out += [{"role": "user", "content": question}, {"role": "assistant", "content": d.text}]
    return Injection(f"The answers earlier in this conversation reflect the values of {ctx.subject}.", tuple(out))


def _probe_of(demonstration: "Demonstration"):
    """The built-in probe a demonstration was made from, or None (a user profile's own statement)."""
    if demonstration.probe_id is None or not demonstration.language:
        return None
    from ..data.probes import available_languages, load_probes

    if demonstration.language not in available_languages():
        return None
    return next((p for p in load_probes(demonstration.language) if p.id == demonstration.probe_id), None)


provide_choices("format", lambda: FORMATS)
