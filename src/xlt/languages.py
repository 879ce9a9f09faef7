"""The language registry: ISO code, English name (used in init texts), script and group."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from xlt.errors import XLTError


class Group(StrEnum):
    SOURCE = "source"  # high-resource: task representations are trained here
    FOCUS = "focus"  # mid- and low-resource targets the paper focuses on
    OTHER = "other"


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    script: str
    group: Group = Group.OTHER


_REGISTRY: dict[str, Language] = {}


# A code becomes part of file names (``data/test/{language}.jsonl``, ``reps/language/sk-prompt``): one path
# segment, as ``xlt.paths.NAME`` allows, so that no code climbs out of a directory (``..``, ``/``).
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}")


def register_language(language: Language, *, replace: bool = False) -> None:
    if not isinstance(language.code, str) or not CODE.fullmatch(language.code):
        raise XLTError(
            f"language code {language.code!r} is not valid: use up to 64 letters, digits, '_' and '-' "
            "(e.g. 'sk' or 'sr-Latn'); it becomes part of file names"
        )
    if not isinstance(language.name, str) or not language.name.strip():
        raise XLTError(f"language '{language.code}' needs a name (its English name, e.g. 'Slovak')")
    if language.code in _REGISTRY and not replace:
        raise XLTError(f"language '{language.code}' is already registered (pass replace=True to redefine it)")
    _REGISTRY[language.code] = language


for _code, _name, _script, _group in [
    ("ar", "Arabic", "Arab", Group.SOURCE),
    ("de", "German", "Latn", Group.SOURCE),
    ("en", "English", "Latn", Group.SOURCE),
    ("es", "Spanish", "Latn", Group.SOURCE),
    ("ru", "Russian", "Cyrl", Group.SOURCE),
    ("zh", "Chinese", "Hans", Group.SOURCE),
    ("bg", "Bulgarian", "Cyrl", Group.FOCUS),
    ("cs", "Czech", "Latn", Group.FOCUS),
    ("el", "Greek", "Grek", Group.FOCUS),
    ("ml", "Malayalam", "Mlym", Group.FOCUS),
    ("ro", "Romanian", "Latn", Group.FOCUS),
    ("sk", "Slovak", "Latn", Group.FOCUS),
    ("sl", "Slovenian", "Latn", Group.FOCUS),
    ("sw", "Swahili", "Latn", Group.FOCUS),
    ("te", "Telugu", "Telu", Group.FOCUS),
    ("ur", "Urdu", "Arab", Group.FOCUS),
]:
    register_language(Language(_code, _name, _script, _group))

PAPER_LANGUAGES: tuple[str, ...] = tuple(_REGISTRY)


def get_language(code: str) -> Language:
    language = _REGISTRY.get(code)
    if language is None:
        raise XLTError(
            f"unknown language code '{code}' (known: {', '.join(sorted(_REGISTRY))}; "
            "add one with xlt.languages.register_language)"
        )
    return language


def languages(group: Group | None = None) -> list[Language]:
    return [lang for lang in _REGISTRY.values() if group is None or lang.group is group]
