"""The language registry: the paper's 16 languages, English names (used in prompt init texts), groups."""

from __future__ import annotations

import pytest

from xlt import XLTError
from xlt.languages import (
    _REGISTRY,
    PAPER_LANGUAGES,
    Group,
    Language,
    get_language,
    languages,
    register_language,
)

PAPER = ["ar", "bg", "cs", "de", "el", "en", "es", "ml", "ro", "ru", "sl", "sk", "sw", "te", "ur", "zh"]


def test_paper_languages():
    assert sorted(PAPER_LANGUAGES) == sorted(PAPER) and len(PAPER_LANGUAGES) == 16
    assert sorted(lang.code for lang in languages(Group.SOURCE)) == ["ar", "de", "en", "es", "ru", "zh"]
    assert sorted(lang.code for lang in languages(Group.FOCUS)) == sorted(
        ["bg", "cs", "el", "ml", "ro", "sk", "sl", "sw", "te", "ur"]
    )
    assert len(languages()) >= 16


@pytest.mark.parametrize(
    ("code", "name", "script"),
    [
        ("sk", "Slovak", "Latn"),
        ("sl", "Slovenian", "Latn"),
        ("el", "Greek", "Grek"),
        ("zh", "Chinese", "Hans"),
        ("ur", "Urdu", "Arab"),
        ("te", "Telugu", "Telu"),
        ("bg", "Bulgarian", "Cyrl"),
        ("sw", "Swahili", "Latn"),
    ],
)
def test_names(code, name, script):
    lang = get_language(code)
    assert (lang.code, lang.name, lang.script) == (code, name, script)


def test_unknown_and_duplicate():
    with pytest.raises(XLTError, match=r"unknown language code 'xx'.*register_language"):
        get_language("xx")
    with pytest.raises(XLTError, match="already registered"):
        register_language(Language("sk", "Slovakian", "Latn"))
    assert get_language("sk").name == "Slovak"


def test_register_a_language():
    try:
        register_language(Language("hu", "Hungarian", "Latn"))
        assert get_language("hu").group is Group.OTHER
        register_language(Language("hu", "Magyar", "Latn"), replace=True)
        assert get_language("hu").name == "Magyar"
    finally:
        _REGISTRY.pop("hu", None)
    with pytest.raises(XLTError):
        get_language("hu")
