"""middleware.retrieval.chrf against sacrebleu's CHRF(word_order=2) as the oracle."""

import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import middleware.retrieval.chrf as chrf_mod  # noqa: E402
from middleware.retrieval.chrf import ChrfIndex, chrf_pp  # noqa: E402

sacrebleu_chrf = pytest.importorskip("sacrebleu.metrics.chrf")
ORACLE = sacrebleu_chrf.CHRF(word_order=2)
TOL = 1e-9


def oracle(hyp: str, ref: str) -> float:
    return ORACLE.sentence_score(hyp, [ref]).score


def _chars(*ranges: str) -> str:
    """Expand 'a-z' style ranges; other strings are taken literally."""
    out = []
    for r in ranges:
        if len(r) == 3 and r[1] == "-":
            out += [chr(c) for c in range(ord(r[0]), ord(r[2]) + 1)]
        else:
            out += list(r)
    return "".join(out)


LATIN = _chars("a-z", "A-Z")
SCRIPTS = {
    "en": LATIN,
    "ro": LATIN + "ăâîșțşţĂÂÎȘȚ",
    "el": _chars("α-ω", "Α-Ρ", "Σ-Ω", "άέήίόύώϊϋΐ"),
    "ur": _chars("ا-ي", "ٹڈڑںہےھۓکگپچژ۔"),
    "fa": _chars("ا-ي", "پچژکگی", "\u200c"),  # ZWNJ is not whitespace, it stays inside words
    "tl": LATIN + "ñÑ",
    "id": LATIN,
    "de": LATIN + "äöüßÄÖÜ",
    "ms": LATIN,
    "bn": _chars("অ-ঔ", "ক-হ", "ািীুূৃেৈোৌ্ংঃঁ", "০-৯", "।"),
    "sr": _chars("а-ш", "А-Ш", "ђјљњћџЂЈЉЊЋЏ"),
    "tr": LATIN + "çğıöşüÇĞİÖŞÜ",
    "vi": LATIN + "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵĐ"
          + "\u0301\u0300\u0303",  # stray combining accents, as in NFD text
    "ko": "".join(chr(0xAC00 + 37 * i) for i in range(120)),  # spread over the Hangul syllable block
}
PUNCT = ".,!?;:'\"()-"
SPACES = [" "] * 12 + ["  ", "\t", "\n", "\u00a0", " \u3000 "]


def word_pool(rng: random.Random, alphabet: str) -> list:
    """A small vocabulary so random sentences share words and char n-grams."""
    pool = [rng.choice(alphabet) for _ in range(4)]  # one-character words
    pool += ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 9))) for _ in range(22)]
    pool += [str(rng.randint(0, 2024)), "1", "7"]
    return pool


def sentence(rng: random.Random, pool: list, max_words: int = 12) -> str:
    words = []
    for _ in range(rng.randint(0, max_words)):
        w = rng.choice(pool)
        r = rng.random()
        if r < 0.12:
            w += rng.choice(PUNCT)
        elif r < 0.20:
            w = rng.choice(PUNCT) + w
        elif r < 0.25:
            w = "(" + w + ")"
        elif r < 0.32:
            w = rng.choice(PUNCT) * rng.randint(1, 3)
        words.append(w)
        if rng.random() < 0.15:
            words.append(w)  # repeated word
    text = "".join(w + rng.choice(SPACES) for w in words)
    if rng.random() < 0.2:
        text = rng.choice(SPACES) + text
    return text if rng.random() < 0.5 else text.rstrip()


def perturb(rng: random.Random, text: str, pool: list) -> str:
    words = text.split()
    for _ in range(rng.randint(0, 3)):
        op = rng.random()
        if op < 0.4 and words:
            del words[rng.randrange(len(words))]
        elif op < 0.8:
            words.insert(rng.randint(0, len(words)), rng.choice(pool))
        elif words:
            i, j = rng.randrange(len(words)), rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


def pairs_for(script: str, n: int):
    rng = random.Random(f"pairs-{script}")
    pool = word_pool(rng, SCRIPTS[script])
    for _ in range(n):
        ref = sentence(rng, pool)
        r = rng.random()
        if r < 0.4:
            hyp = sentence(rng, pool)
        elif r < 0.9:
            hyp = perturb(rng, ref, pool)
        else:
            hyp = ref
        yield hyp, ref


EDGE = ["", " ", "  \t\n ", ".", "...", "!?", "(", "a", "ä", "한", "x y", "a.", ".a", "(a)", "a a a",
        "- - -", "1", "12 12", "\u200c", "\ud800", "The cat sat on the mat.",
        "The cat sat on the mat.", "the cat sat on the mat", "cat", "Ελλάδα", "۔", "।"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_chrf_pp_matches_sacrebleu_random(script):
    diffs = [abs(chrf_pp(h, r) - oracle(h, r)) for h, r in pairs_for(script, 300)]
    assert max(diffs) <= TOL


def test_chrf_pp_edge_cases():
    for h in EDGE:
        for r in EDGE:
            assert abs(chrf_pp(h, r) - oracle(h, r)) <= TOL, (h, r)
    assert chrf_pp("", "") == 0.0
    assert chrf_pp("The cat sat.", "The cat sat.") == pytest.approx(100.0)


def test_chrf_pp_cross_script():
    rng = random.Random("cross")
    pools = {s: word_pool(rng, a) for s, a in SCRIPTS.items()}
    names = sorted(pools)
    for _ in range(500):
        a, b = rng.choice(names), rng.choice(names)
        h = sentence(rng, pools[a]) + " " + sentence(rng, pools[b], 3)
        r = sentence(rng, pools[b])
        assert abs(chrf_pp(h, r) - oracle(h, r)) <= TOL


def expected_top(ref_scores: np.ndarray) -> list:
    """Stable sort by descending score: equal scores keep statement order."""
    return sorted(range(len(ref_scores)), key=lambda i: -ref_scores[i])


def check_index(statements, queries):
    index = ChrfIndex(statements)
    assert len(index) == len(statements)
    for q in queries:
        ref = np.array([oracle(q, s) for s in statements])
        got = index.scores(q)
        assert got.shape == (len(statements),)
        assert np.abs(got - ref).max(initial=0.0) <= TOL, q
        order = expected_top(ref)
        for k in (1, 5, len(statements), len(statements) + 3):
            top = index.top_k(q, k)
            assert [i for i, _ in top] == order[:k], (q, k)
            assert all(abs(s - ref[i]) <= TOL for i, s in top)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_index_matches_sacrebleu(script):
    rng = random.Random(f"index-{script}")
    pool = word_pool(rng, SCRIPTS[script])
    statements = [sentence(rng, pool) for _ in range(120)] + EDGE
    queries = [sentence(rng, pool) for _ in range(4)]
    queries += [perturb(rng, rng.choice(statements), pool) for _ in range(4)]
    queries += [rng.choice(statements), "", " ", "...", rng.choice(pool), "zzz qqq"]
    check_index(statements, queries)


def test_index_mixed_scripts_and_duplicates():
    rng = random.Random("mixed")
    pools = [word_pool(rng, a) for a in SCRIPTS.values()]
    statements = [sentence(rng, rng.choice(pools)) for _ in range(300)]
    statements += statements[:40] + [""] * 3
    rng.shuffle(statements)
    queries = [sentence(rng, rng.choice(pools)) for _ in range(10)] + statements[:5]
    check_index(statements, queries)


def test_top_k_tie_break_on_duplicates():
    statements = ["the cat sat", "a dog barked", "the cat sat", "the cat sat.", "the cat sat", "x"]
    index = ChrfIndex(statements)
    top = index.top_k("the cat sat", 4)
    assert [i for i, _ in top[:3]] == [0, 2, 4]
    assert top[0][1] == top[1][1] == top[2][1] == pytest.approx(100.0)
    assert top[3][0] == 3
    assert [i for i, _ in index.top_k("the cat sat", 2)] == [0, 2]  # tie cut at k keeps lower indices
    assert index.top_k("the cat sat", 0) == []
    assert [i for i, _ in index.top_k("zzz", 100)] == list(range(6))  # all zero: statement order


def test_empty_index():
    index = ChrfIndex([])
    assert len(index) == 0
    assert index.scores("hello").shape == (0,)
    assert index.top_k("hello", 3) == []


def test_probe_statements_if_available():
    probe_dir = Path(__file__).resolve().parents[3] / "shared" / "data" / "arora-probes"
    files = sorted(probe_dir.glob("*.csv"))
    if not files:
        pytest.skip("probe data not available")
    statements = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) > 3:
                statements.append(cols[2].replace("[MASK]", cols[3]))
    rng = random.Random("probes")
    statements = rng.sample(statements, min(400, len(statements)))
    check_index(statements, rng.sample(statements, 5) + ["Family is important in my life"])


def test_dense_columns_and_huge_counts():
    """Common n-grams live in dense uint16 rows; counts beyond uint16 must stay exact."""
    statements = ["a" * k + " b" for k in range(1, 9)] + ["b" * 65600, "ab ab", "", "c"]
    index = ChrfIndex(statements)
    assert index._dense.shape[0] > 0  # the frequent "a" / "b" columns took the dense path
    queries = ["a" * 12 + " b b", "a" * 65600, "b" * 65600 + " a", "ab", "c c c"]
    for q in queries:
        ref = np.array([oracle(q, s) for s in statements])
        assert np.abs(index.scores(q) - ref).max() <= TOL


def test_count_matrix_row_sums_are_reference_totals():
    rng = random.Random("matrix")
    pool = word_pool(rng, SCRIPTS["de"])
    statements = [sentence(rng, pool) for _ in range(60)] + EDGE
    index = ChrfIndex(statements)
    sums = np.asarray(index.count_matrix().sum(axis=1)).ravel().reshape(8, len(statements))
    for i, s in enumerate(statements):
        line, words = "".join(s.split()), chrf_mod._words(s)
        expected = [max(0, len(line) - k) for k in range(6)] + [max(0, len(words) - k) for k in range(2)]
        assert sums[:, i].tolist() == expected
