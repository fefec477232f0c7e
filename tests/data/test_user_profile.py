import json

import pytest

from middleware import SelfAligner
from middleware.errors import ProfileError
from middleware.data.user_profile import load_user_profile, save_user_profile


def test_yaml_statements_and_answers(tmp_path):
    f = tmp_path / "me.yaml"
    f.write_text("name: me\nstatements:\n  - text: I think family always comes before work.\n"
                 "    category: Social Values, Norms, Stereotypes\nanswers:\n  - probe: Q29\n    option: 2\n"
                 "  - probe: Q182\n    option: sometimes\n")
    prof = load_user_profile(f)
    texts = [s.text for s in prof.statements]
    assert texts == ["I think family always comes before work.",
                     "I disagree that men make better political leaders than women do.",
                     "Homosexuality is sometimes justifiable."]
    demos = SelfAligner(profile=f, k=1).demonstrations("Do men make better political leaders?")
    assert demos[0].probe_id == "Q29"
    out = SelfAligner(profile=f, min_relevance=0).align([{"role": "user", "content": "family or work?"}])
    assert "values of the user" in out[0]["content"]


def test_json_profile(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"statements": [{"text": "Religion matters to me."}]}))
    assert load_user_profile(f).statements[0].text == "Religion matters to me."


@pytest.mark.parametrize("body,expect", [
    ("statements:\n  - category: x\n", r"bad\.yaml: statements\[0\]\.text: Field required"),
    ("answers:\n  - probe: Q999\n    option: 1\n", r"answers\[0\]\.probe: unknown probe id 'Q999'"),
    ("answers:\n  - probe: Q29\n    option: 3\n", r"answers\[0\]\.option"),
    ("answers:\n  - probe: Q29\n    option: maybe\n", r"'maybe' is not an option of Q29"),
    ("{}\n", "no statements and no answers"),
    ("statements: [\n", "not valid YAML"),
    ("- just a list\n", "must be a mapping"),
    ("language: xx\nstatements:\n  - text: a\n", "language"),
    ("statements:\n  - text: a\n    colour: red\n", r"statements\[0\]\.colour: Extra inputs"),
])
def test_invalid_files_name_file_entry_and_problem(tmp_path, body, expect):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(ProfileError, match=expect) as e:
        load_user_profile(f)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="cannot read"):
        load_user_profile(tmp_path / "nope.yaml")


def test_save_round_trip(tmp_path):
    path = save_user_profile(tmp_path / "me.yaml", {"Q29": 1, "Q1": 0})
    texts = [s.text for s in load_user_profile(path).statements]
    assert texts == ["I disagree that men make better political leaders than women do.", "Family is important in my life."]
