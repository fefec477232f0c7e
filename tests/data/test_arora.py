import yaml

from middleware.data.answers import answer_for, load_answers
from middleware.data.arora import import_arora, load_arora


def test_arora_files_load_and_report_bad_rows(shared_data):
    probes, report = load_arora(shared_data / "arora-probes/de.csv")
    assert report.kept == 254 and len(report.skipped) == 18  # 18 rows have one option (data README)
    assert all(p.template.count("_") == 1 for p in probes)
    q28 = next(p for p in probes if p.id == "Q28")
    assert q28.language == "de" and q28.category == "Social Values, Norms, Stereotypes"
    _, sr = load_arora(shared_data / "arora-probes/sr.csv")
    assert any(why == "no [MASK] in the template" for _, why in sr.skipped)


def test_arora_probes_get_correctly_oriented_answers(shared_data):
    probes = {p.id: p for p in load_arora(shared_data / "arora-probes/de.csv")[0]}
    deu = load_answers("DEU")
    # Their Q121 lists "good" first; ours lists "bad" first: the majority index must flip.
    from middleware.data.probes import load_probes

    ours = next(p for p in load_probes("en") if p.id == "Q121")
    assert answer_for(probes["Q121"], deu).majority == 1 - answer_for(ours, deu).majority
    answered = sum(answer_for(p, deu) is not None for p in probes.values())
    assert answered >= 200


def test_import_writes_probe_files(shared_data, tmp_path):
    reports = import_arora(shared_data / "arora-probes", tmp_path)
    assert len(reports) == 13
    doc = yaml.safe_load((tmp_path / "ro.yaml").read_text())
    assert doc["language"] == "ro" and len(doc["probes"]) == reports[[r.language for r in reports].index("ro")].kept
    from middleware.data.probes import load_probes

    assert len(load_probes("ro", tmp_path)) == len(doc["probes"])


def test_loading_arora_files_leaves_no_file_open(shared_data):
    """`selfalign eval --probes arora:DIR` printed a ResourceWarning: the file was never closed."""
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_arora(shared_data / "arora-probes/de.csv")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
