import pytest
import yaml

from middleware.data.countries import LANGUAGES
from middleware.errors import ProfileError
from middleware.data.probes import Probe, available_languages, load_probes

from conftest import ROOT


def test_every_paper_language_has_the_same_probes():
    en = load_probes("en")
    assert len(en) >= 237  # the paper's coverage
    for lang in LANGUAGES:
        probes = load_probes(lang)
        assert [p.id for p in probes] == [p.id for p in en], lang
        for p, e in zip(probes, en):
            assert p.template.count("_") == 1 and p.options[0] != p.options[1]
            assert p.category == e.category and p.codes == e.codes


def test_all_fourteen_languages_are_shipped():
    assert available_languages() == list(LANGUAGES)


def test_master_excludes_economic_values_and_postmaterialist_index():
    ids = {p.id for p in load_probes("en")}
    assert not ids & {f"Q{n}" for n in range(106, 112)}
    assert not ids & {f"Q{n}" for n in range(152, 158)}
    categories = {p.category for p in load_probes("en")}
    assert "Economic Values" not in categories and "" not in categories


def test_codes_are_disjoint_and_fill_works():
    for p in load_probes("en"):
        assert not set(p.codes[0]) & set(p.codes[1])
    q29 = next(p for p in load_probes("en") if p.id == "Q29")
    assert q29.fill(1) == "I disagree that men make better political leaders than women do."
    assert q29.option_for_code(2) == 0 and q29.option_for_code(3) == 1 and q29.option_for_code(-1) is None


@pytest.mark.parametrize("template,options", [("no blank", ("a", "b")), ("two _ _", ("a", "b")), ("one _", ("a", "a"))])
def test_probe_validation(template, options):
    with pytest.raises(ValueError):
        Probe(id="Q1", wvs_id="Q1", language="en", template=template, options=options)


def test_broken_probe_file_names_file_and_probe(tmp_path):
    (tmp_path / "en.yaml").write_text((ROOT / "profiles/probes/en.yaml").read_text())
    doc = yaml.safe_load((ROOT / "profiles/probes/en.yaml").read_text())
    doc["language"] = "de"
    doc["probes"] = [{"id": "Q1", "template": "kein Platzhalter", "options": ["a", "b"]}]
    (tmp_path / "de.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ProfileError, match=r"de\.yaml: probe 'Q1'"):
        load_probes("de", tmp_path)
