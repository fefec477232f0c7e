"""Language detection and the per-message language choice of language="auto"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from middleware.retrieval.aligner import SelfAligner
from middleware.retrieval.language import (PROBE_LANGUAGES, detect_language, is_latin_serbian, serbian_to_cyrillic,
                                           serbian_to_latin)

FORMS = json.loads((Path(__file__).resolve().parents[2] / "benchmarks/data/question_forms.json")
                   .read_text(encoding="utf-8"))["languages"]

# Chat messages that are neither probes nor question forms (held out from everything the detector saw).
CHAT = {
    "en": ["Can you help me write a letter to my landlord about the broken heating?",
           "What should I cook tonight for my vegetarian friends?"],
    "ro": ["Poți să mă ajuți să scriu o scrisoare către proprietar despre căldura stricată?",
           "Ce ar trebui să gătesc diseară pentru prietenii mei vegetarieni?"],
    "de": ["Kannst du mir helfen, einen Brief an meinen Vermieter wegen der kaputten Heizung zu schreiben?",
           "Was soll ich heute Abend für meine vegetarischen Freunde kochen?"],
    "id": ["Bisakah kamu membantu saya menulis surat kepada pemilik rumah tentang pemanas yang rusak?",
           "Apa yang sebaiknya saya masak malam ini untuk teman-teman vegetarian saya?"],
    "ms": ["Bolehkah anda membantu saya menulis surat kepada tuan rumah tentang pemanas yang rosak?",
           "Apakah yang patut saya masak malam ini untuk kawan-kawan vegetarian saya?"],
    "tl": ["Puwede mo ba akong tulungang sumulat ng liham sa may-ari ng bahay tungkol sa sirang heater?",
           "Ano ang dapat kong lutuin mamayang gabi para sa mga kaibigan kong vegetarian?"],
    "tr": ["Ev sahibime bozuk kalorifer hakkında bir mektup yazmama yardım eder misin?",
           "Bu akşam vejetaryen arkadaşlarım için ne pişirmeliyim?"],
    "vi": ["Bạn có thể giúp tôi viết thư cho chủ nhà về cái máy sưởi bị hỏng không?",
           "Tối nay tôi nên nấu gì cho những người bạn ăn chay của mình?"],
    "sr": ["Можеш ли да ми помогнеш да напишем писмо станодавцу о поквареном грејању?",
           "Шта да скувам вечерас за своје пријатеље вегетаријанце?"],
    "el": ["Μπορείς να με βοηθήσεις να γράψω ένα γράμμα στον ιδιοκτήτη για τη χαλασμένη θέρμανση;",
           "Τι να μαγειρέψω απόψε για τους χορτοφάγους φίλους μου;"],
    "fa": ["می‌توانی کمکم کنی نامه‌ای به صاحبخانه درباره شوفاژ خراب بنویسم؟",
           "امشب برای دوستان گیاه‌خوارم چه غذایی بپزم؟"],
    "ur": ["کیا آپ مالک مکان کو خراب ہیٹر کے بارے میں خط لکھنے میں میری مدد کر سکتے ہیں؟",
           "آج رات اپنے سبزی خور دوستوں کے لیے مجھے کیا پکانا چاہیے؟"],
    "bn": ["বাড়িওয়ালাকে নষ্ট হিটার নিয়ে একটি চিঠি লিখতে আপনি কি আমাকে সাহায্য করতে পারবেন?",
           "আজ রাতে আমার নিরামিষভোজী বন্ধুদের জন্য কী রান্না করব?"],
    "ko": ["고장 난 난방에 대해 집주인에게 보낼 편지를 쓰는 것을 도와줄 수 있나요?",
           "오늘 저녁 채식주의자 친구들을 위해 무엇을 요리해야 할까요?"],
}


@pytest.mark.parametrize("lang", PROBE_LANGUAGES)
def test_detection_accuracy_per_language(lang):
    """>= 95% of one-sentence messages (our 40 question forms + chat lines) per language."""
    texts = list(FORMS[lang].values()) + CHAT[lang]
    wrong = [(t, detect_language(t)) for t in texts if detect_language(t) != lang]
    assert len(wrong) <= 0.05 * len(texts), wrong


def test_serbian_latin_is_serbian():
    texts = [serbian_to_latin(t) for t in FORMS["sr"].values()]
    assert all(is_latin_serbian(t) for t in texts)
    hits = sum(detect_language(t) == "sr" for t in texts)
    assert hits >= 0.95 * len(texts)


def test_serbian_transliteration_round_trip():
    text = "Да ли је породица важна? Љубав, њива, џеп, ђак, ћерка."
    latin = serbian_to_latin(text)
    assert latin == "Da li je porodica važna? Ljubav, njiva, džep, đak, ćerka."
    assert serbian_to_cyrillic(latin) == text


@pytest.mark.parametrize("text,lang", [
    ("Est-ce que le divorce peut être justifié ?", "fr"), ("¿Crees que la pena de muerte está justificada?", "es"),
    ("離婚は正当化されると思いますか？", "ja"), ("Je, talaka inaweza kuhalalishwa?", "sw")])
def test_languages_without_probes_are_not_taken_for_ours(text, lang):
    assert detect_language(text) not in PROBE_LANGUAGES


def test_no_letters_no_language():
    assert detect_language("12345 ?!") is None


def test_auto_renders_in_the_message_language():
    aligner = SelfAligner(country="de")
    assert aligner.language == "auto"
    for lang in ("en", "de", "tr", "ko"):
        demos = aligner.demonstrations(FORMS[lang]["Q184"])
        assert demos and {d.language for d in demos} == {lang}
        assert demos[0].probe_id == "Q184"


def test_auto_reads_serbian_latin_with_the_cyrillic_probes():
    aligner = SelfAligner(country="de")
    demos = aligner.demonstrations(serbian_to_latin(FORMS["sr"]["Q185"]))
    assert demos[0].language == "sr" and demos[0].probe_id == "Q185"
    assert all("\u0400" <= ch <= "\u04ff" for ch in demos[0].text if ch.isalpha())


def test_explicit_language_wins():
    aligner = SelfAligner(country="de", language="de")
    assert aligner.language == "de"
    demos = aligner.demonstrations(FORMS["en"]["Q184"])
    assert {d.language for d in demos} == {"de"}  # German statements for an English message, as asked
    assert SelfAligner(country="de", language="en").demonstrations(FORMS["de"]["Q184"])[0].language == "en"


def test_auto_shares_the_per_language_profiles():
    a, b = SelfAligner(country="de"), SelfAligner(country="de", k=3)
    a.demonstrations(FORMS["tr"]["Q1"])
    assert a.choose(FORMS["tr"]["Q1"])[0] is b.choose(FORMS["tr"]["Q6"])[0]


def test_demonstrations_carry_their_language_in_json():
    d = SelfAligner(country="us", language="en").demonstrations("Is divorce justifiable?")[0]
    assert d.to_dict()["language"] == "en"


def test_without_the_semantic_extra_foreign_messages_fall_back_to_chrf(monkeypatch):
    from middleware.retrieval import semantic

    monkeypatch.setattr(semantic, "available", lambda: False)
    monkeypatch.setattr(semantic, "_model", lambda: pytest.fail("the embedding model was used"))
    demos = SelfAligner(country="de").demonstrations("Est-ce que le divorce peut être justifié ?")
    assert demos and {d.language for d in demos} == {"en"}
