"""What the docs say the code does, checked against the code: defaults, the options, the strategies, the layers."""

from __future__ import annotations

import json
import re
import tomllib
from functools import lru_cache
from pathlib import Path

import pytest

from middleware.models.provider import DEFAULT_MODEL
from middleware.models.registry import EVAL_MODEL
from middleware.options import DEFAULT_K, DEFAULT_STRATEGY, OPTION_NAMES, option_fields
from middleware.retrieval.strategies import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _table(text: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header line starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _shown(value) -> str:
    return "none" if value is None else f"`{value}`" if isinstance(value, str) else f"{value:g}"


def test_the_every_probe_figures_are_the_committed_results():
    """The product's default on every probe of the 14 pairs: the README's sentence and docs/eval.md's table."""
    folder = "gemma-3-270m-14pairs-system-all"
    results = _results(folder)
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    sentence = (f"On every probe of the 14 pairs ({results['zero_shot']['probes']:,} probes, "
                f"{results['zero_shot']['misaligned']:,} misaligned) the default improves "
                f"**{_improved(folder, 'chrf')}%**")
    assert sentence in readme
    assert f"its minority control {_improved(folder, 'chrf+minority')}%, cultural prompting " \
           f"{_improved(folder, 'cultural')}%" in readme
    # The summary under "Documentation" too.
    assert (f"on every probe of the 14 pairs ({results['zero_shot']['probes']:,}) the default improves "
            f"{_improved(folder, 'chrf')}%") in readme and f"cultural prompting {_improved(folder, 'cultural')}%." in readme
    eval_doc = (DOCS / "eval.md").read_text(encoding="utf-8")
    rows = {row[0]: row[1:] for row in _table(eval_doc, "| pair (every probe) | misaligned |")}
    assert len(rows) == 15 and rows["**all**"][1].strip("*").startswith(_improved(folder, "chrf"))
    for block in results["pairs"]:
        assert rows[block["pair"]][1].startswith(f"{block['strategies']['chrf']['improved_pct']:.1f}"), block["pair"]


def test_the_options_table_is_the_fields():
    rows = _table((DOCS / "integrations.md").read_text(), "| option | what | default |")
    assert [_names(r[0])[0] for r in rows] == list(OPTION_NAMES)
    for f, row in zip(option_fields(), rows):
        expected = "`auto`" if f.name == "language" else _shown(f.default)  # None means auto (SelfAligner)
        assert row[2] == expected, (f.name, row[2])
        if f.metadata["minimum"] is not None:
            assert f"{f.metadata['minimum']:g} to {f.metadata['maximum']:g}" in row[1], f.name


def test_every_strategy_is_documented_and_no_other():
    rows = _table((DOCS / "integrations.md").read_text(), "| option | what | default |")
    (strategy_row,) = [r for r in rows if r[0] == "`strategy`"]
    assert set(_names(strategy_row[1])) - {"retrieval.md"} == set(STRATEGIES)
    table = _table((DOCS / "retrieval.md").read_text(), "| strategy | demonstrations |")
    assert [_names(r[0])[0] for r in table] == list(STRATEGIES)
    assert [_names(r[0])[0] for r in table if "(default)" in r[0]] == [DEFAULT_STRATEGY]


@pytest.mark.parametrize("doc,pattern,expected", [
    ("docs/proxy.md", r"`--model` \(the upstream[^)]*; default `([^`]+)`\)", DEFAULT_MODEL),
    ("docs/chat.md", r"`--model/-m` \(default `([^`]+)`", DEFAULT_MODEL),
    ("docs/eval.md", r"`--model M` \|[^|]*\(default `([^`]+)`\)", EVAL_MODEL),
    ("docs/chat.md", r"`--k` \((\d+)\)", str(DEFAULT_K)),
    ("README.md", r"`k` \((?:at most )?(\d+)\)", str(DEFAULT_K)),
    ("README.md", r"`language` \(default `(\w+)`", "auto"),
])
def test_defaults_named_in_the_docs_are_the_code(doc, pattern, expected):
    found = re.findall(pattern, (ROOT / doc).read_text())
    assert found, f"{doc} no longer says {pattern!r}: update this test with the doc"
    assert set(found) == {expected}, (doc, found)


def test_the_layers_table_is_the_contract():
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contract if c["type"] == "layers")["layers"]
    rows = _table((DOCS / "architecture.md").read_text(), "| layer | folders | may import |")
    assert [sorted(_names(r[1])) for r in rows] == [sorted(x.strip() for x in layer.split("|")) for layer in layers]


@lru_cache(maxsize=None)
def _results(folder: str) -> dict:
    """A committed study's results.json (read once: the docs tests quote it many times)."""
    return json.loads((ROOT / "examples" / "results" / folder / "results.json").read_text(encoding="utf-8"))


def _improved(folder: str, condition: str) -> str:
    """The committed result's improved share for ``condition``, as the docs print it."""
    return f"{_results(folder)['strategies'][condition]['improved_pct']:.1f}"


def test_the_headline_figures_are_the_committed_results():
    """The README and docs/eval.md quote the 14-pair grids: a rerun that changes them must change the text."""
    paper, system = "gemma-3-270m-14pairs-paper", "gemma-3-270m-14pairs-system"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {row[0]: row[1] for row in _table(readme, "| what the model gets |")}
    assert rows["**selfalign's default: up to 5 chrF++ statements in the system message (3.7 on average)**"] \
        .startswith(f"**{_improved(system, 'chrf')}%**")
    assert rows["the paper's prompt, the same retrieval"].startswith(f"{_improved(paper, 'chrf')}%")
    assert rows["the same statements with the minority's answers (a control)"] \
        .startswith(f"{_improved(system, 'chrf+minority')}%")
    assert rows["cultural prompting (one sentence naming the country)"].startswith(f"{_improved(system, 'cultural')}%")
    chat = "smollm2-135m-en-us-system"
    assert f"block improves {_improved(chat, 'chrf')}% of the misaligned probes" in " ".join(readme.split())
    eval_doc = (DOCS / "eval.md").read_text(encoding="utf-8")
    table = {row[0]: row[1:] for row in _table(eval_doc, "| condition | paper injection | product injection |")}
    for label, condition in [("chrF++ (the product's default)", "chrf"), ("chrF++, minority control", "chrf+minority"),
                             ("random", "random"), ("cultural prompting", "cultural")]:
        assert table[label][0].strip("*").startswith(_improved(paper, condition)), label
        assert table[label][1].strip("*").startswith(_improved(system, condition)), label
