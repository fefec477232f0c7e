"""WVS cloze probes: one statement with a blank and two options, in one of 14 languages.

The English file ``profiles/probes/en.yaml`` is the master: it holds each probe's WVS
category and the answer codes that count for each option. Translations hold only the
template and the options; they inherit the rest by id.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._paths import profiles_dir
from .countries import LANGUAGES, resolve_language
from ..errors import ProfileError

__all__ = ["BLANK", "Probe", "load_probes", "available_languages"]

BLANK = "_"


class Probe(BaseModel):
    """A two-option cloze statement tied to a WVS Wave 7 question."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="probe id, e.g. 'Q28' (WVS Wave 7 question id, or a sub-id such as '106a')")
    wvs_id: str = Field(description="WVS Wave 7 variable the answers come from, e.g. 'Q28'")
    category: str = ""
    language: str
    template: str = Field(description="statement with exactly one '_' blank")
    options: tuple[str, str]
    codes: tuple[tuple[int, ...], tuple[int, ...]] | None = Field(
        default=None, description="WVS answer codes counted for option 1 and option 2")

    @field_validator("template")
    @classmethod
    def _one_blank(cls, v: str) -> str:
        if v.count(BLANK) != 1:
            raise ValueError(f"template must contain exactly one '{BLANK}' blank: {v!r}")
        return v

    @field_validator("options")
    @classmethod
    def _two_options(cls, v: tuple[str, str]) -> tuple[str, str]:
        if not all(o.strip() for o in v) or v[0] == v[1]:
            raise ValueError(f"options must be two different non-empty strings: {v!r}")
        return v

    @model_validator(mode="after")
    def _disjoint_codes(self) -> "Probe":
        if self.codes is not None and set(self.codes[0]) & set(self.codes[1]):
            raise ValueError(f"codes for the two options overlap: {self.codes}")
        return self

    def fill(self, option: int | str) -> str:
        """The statement with the blank replaced by option 0/1 (or by a given string)."""
        text = self.options[option] if isinstance(option, int) else option
        return self.template.replace(BLANK, text, 1)

    @property
    def question(self) -> str:
        """The template with a visible blank, as shown to a model or a person."""
        return self.template.replace(BLANK, "___", 1)

    def option_for_code(self, code: int) -> int | None:
        if self.codes is None:
            return None
        for i, group in enumerate(self.codes):
            if code in group:
                return i
        return None

    def rule(self) -> str:
        """Human-readable collapse rule: which WVS codes map to which option."""
        if self.codes is None:
            return "no WVS code mapping"
        return "; ".join(f"codes {','.join(map(str, c))} -> {o!r}" for c, o in zip(self.codes, self.options))


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as e:
        raise ProfileError(f"{path}: cannot read probe file: {e}") from None


@lru_cache(maxsize=None)
def _load(language: str, directory: str) -> tuple[Probe, ...]:
    base = Path(directory)
    # Imported probe sets carry their own codes and categories; others inherit the built-in English master's.
    master_path = base / "en.yaml" if (base / "en.yaml").is_file() else profiles_dir() / "probes" / "en.yaml"
    master = {p["id"]: p for p in _read_yaml(master_path)["probes"]}
    path = base / f"{language}.yaml"
    if not path.is_file():
        raise ProfileError(f"no probes for language {language!r} in {base}")
    probes = []
    for entry in _read_yaml(path)["probes"]:
        meta = {**master.get(entry["id"], {}), **entry}
        codes = meta.get("codes")
        try:
            probes.append(Probe(
                id=entry["id"], wvs_id=meta.get("wvs_id", entry["id"]), category=meta.get("category", ""),
                language=language, template=entry["template"], options=tuple(entry["options"]),
                codes=tuple(tuple(c) for c in codes) if codes else None))
        except ValueError as e:
            raise ProfileError(f"{path}: probe {entry.get('id')!r}: {e}") from None
    return tuple(probes)


def load_probes(language: str = "en", directory: str | Path | None = None) -> list[Probe]:
    """The built-in probes of a language (``en`` and the 13 languages of the paper)."""
    lang = resolve_language(language)
    return list(_load(lang, str(directory or profiles_dir() / "probes")))


def available_languages(directory: str | Path | None = None) -> list[str]:
    base = Path(directory or profiles_dir() / "probes")
    return [lang for lang in LANGUAGES if (base / f"{lang}.yaml").is_file()]


@lru_cache(maxsize=1)
def master_codes() -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """WVS id -> code mapping of the built-in probes (the mapping stored answers follow)."""
    return {p.wvs_id: p.codes for p in load_probes("en", profiles_dir() / "probes") if p.codes}
