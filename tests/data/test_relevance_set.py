"""The labelled relevance set under benchmarks/data/relevance/ stays well formed and large enough."""
import json
from collections import Counter

import pytest

from middleware.data.probes import load_probes

from conftest import ROOT

SET = ROOT / "benchmarks" / "data" / "relevance"
LANGS = ["en", "ro", "de", "tr", "fr", "es"]
MINIMUM = {"value": 60, "neutral": 60, "borderline": 20}
KIND_LETTER = {"value": "v", "neutral": "n", "borderline": "b"}
# A follow-up that spelled out its topic would not test conversation handling.
FOLLOW_UP_MAX_CHARS = 40
PROBE_IDS = {p.id for p in load_probes("en")}


def _rows(name):
    path = SET / name
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{name}:{number} is blank"
        rows.append(json.loads(line))
    return rows


def _check_labels(row):
    probes = row["probes"]
    assert isinstance(probes, list) and len(set(probes)) == len(probes), row["id"]
    assert set(probes) <= PROBE_IDS, (row["id"], sorted(set(probes) - PROBE_IDS))
    if row["kind"] == "value":
        assert 1 <= len(probes) <= 6, row["id"]
    else:
        assert probes == [], row["id"]
    assert row["split"] in ("dev", "test"), row["id"]


@pytest.mark.parametrize("lang", LANGS)
def test_message_file_schema_labels_and_counts(lang):
    rows = _rows(f"{lang}.jsonl")
    kinds = Counter()
    splits = Counter()
    for row in rows:
        assert set(row) == {"id", "lang", "kind", "text", "probes", "split"}, row
        assert row["lang"] == lang and row["kind"] in MINIMUM, row["id"]
        assert row["id"].startswith(f"{lang}-{KIND_LETTER[row['kind']]}-"), row["id"]
        assert isinstance(row["text"], str) and row["text"].strip() == row["text"] and row["text"], row["id"]
        _check_labels(row)
        kinds[row["kind"]] += 1
        splits[row["kind"], row["split"]] += 1
    for kind, minimum in MINIMUM.items():
        assert kinds[kind] >= minimum, f"{lang}: {kinds[kind]} {kind} messages, need {minimum}"
        for split in ("dev", "test"):
            assert splits[kind, split] > 0, f"{lang}: no {kind} messages in {split}"
        # Roughly a third is held out for the test split.
        assert 0.2 <= splits[kind, "test"] / kinds[kind] <= 0.4, (lang, kind)


def test_ids_and_texts_are_unique_across_the_set():
    rows = [row for lang in LANGS for row in _rows(f"{lang}.jsonl")] + _rows("conversations.jsonl")
    ids = Counter(row["id"] for row in rows)
    assert not [i for i, n in ids.items() if n > 1]
    texts = Counter(row["text"] for row in rows if "text" in row)
    assert not [t for t, n in texts.items() if n > 1]


def test_conversations_end_in_a_short_user_follow_up():
    rows = _rows("conversations.jsonl")
    assert len(rows) >= 30
    splits = Counter()
    for row in rows:
        assert set(row) == {"id", "lang", "messages", "kind", "probes", "split"}, row
        assert row["id"].startswith("conv-") and row["kind"] in ("value", "neutral"), row["id"]
        _check_labels(row)
        roles = [m["role"] for m in row["messages"]]
        assert len(roles) >= 3 and len(roles) % 2 == 1, row["id"]
        assert roles == ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))], row["id"]
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in row["messages"]), row["id"]
        assert len(row["messages"][-1]["content"]) <= FOLLOW_UP_MAX_CHARS, row["id"]
        splits[row["kind"], row["split"]] += 1
    assert len({row["lang"] for row in rows}) >= 4
    for kind in ("value", "neutral"):
        assert splits[kind, "dev"] > 0 and splits[kind, "test"] > 0, kind
