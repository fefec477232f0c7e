"""User-provided value profiles (YAML or JSON), validated with pydantic.

A file holds statements, answered probes, or both::

    name: my-values            # optional; default: the file name
    language: en               # optional; language of the answered probes (default en)
    statements:
      - text: I believe family comes before work.
        category: Social Values, Norms, Stereotypes   # optional
    answers:
      - probe: Q28             # a built-in probe id
        option: 2              # 1 or 2, or the option's text ("disagree")
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._files import write_atomic
from .countries import resolve_language
from ..errors import ProfileError, SelfAlignError
from .probes import load_probes
from .profile import Statement, ValueProfile, probe_key

__all__ = ["UserProfileFile", "load_user_profile", "save_user_profile"]


class StatementEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    category: str = ""
    probe_id: str | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty")
        return v.strip()


class AnswerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    probe: str
    option: int | str

    @field_validator("option")
    @classmethod
    def _valid_option(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v not in (1, 2):
            raise ValueError("option must be 1 or 2 (or the option's text)")
        return v


class UserProfileFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    language: str = "en"
    description: str = ""
    statements: list[StatementEntry] = Field(default_factory=list)
    answers: list[AnswerEntry] = Field(default_factory=list)

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        return resolve_language(v)

    @model_validator(mode="after")
    def _not_empty(self) -> "UserProfileFile":
        if not self.statements and not self.answers:
            raise ValueError("the profile has no statements and no answers")
        return self


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "file"


def _parse(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ProfileError(f"{path}: cannot read profile: {e.strerror or e}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ProfileError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                           f"{str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping with 'statements' and/or 'answers'")
    return data


def load_user_profile(path: str | Path, language: str | None = None) -> ValueProfile:
    """Read and validate a profile file; an error names the file, the entry and what is wrong."""
    path = Path(path)
    data = _parse(path)
    try:
        spec = UserProfileFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise ProfileError(f"{path}: {_where(err['loc'])}: {err['msg']}") from None
    except SelfAlignError as e:
        raise ProfileError(f"{path}: language: {e}") from None
    statements = [Statement(text=s.text, key=s.text, probe_id=s.probe_id, category=s.category)
                  for s in spec.statements]
    if spec.answers:
        probes = {p.id: p for p in load_probes(spec.language)}
        for i, a in enumerate(spec.answers):
            p = probes.get(a.probe)
            if p is None:
                raise ProfileError(f"{path}: answers[{i}].probe: unknown probe id {a.probe!r} "
                                   f"(ids are WVS question ids such as Q28; see `selfalign profiles probes`)")
            if isinstance(a.option, int):
                option = a.option - 1
            elif a.option in p.options:
                option = p.options.index(a.option)
            else:
                raise ProfileError(f"{path}: answers[{i}].option: {a.option!r} is not an option of {p.id} "
                                   f"(options: 1 = {p.options[0]!r}, 2 = {p.options[1]!r})")
            statements.append(Statement(text=p.fill(option), key=probe_key(p.template), probe_id=p.id,
                                        category=p.category))
    return ValueProfile(name=spec.name or path.stem, language=language and resolve_language(language) or spec.language,
                        statements=statements, description=spec.description or f"user profile {path.name}",
                        subject="the user")


def save_user_profile(path: str | Path, answers: dict[str, int], language: str = "en", name: str | None = None) -> Path:
    """Write answered probes (probe id -> option index 0/1) atomically as a YAML profile."""
    path = Path(path)
    doc = {"name": name or path.stem, "language": resolve_language(language),
           "answers": [{"probe": pid, "option": opt + 1} for pid, opt in answers.items()]}
    return write_atomic(path, yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
