"""Checks on the demo data shipped in ``xlt/data`` (built by ``scripts/build_demo_data.py``): integrity against the
manifest, the emoji task's split, and that no emoji name or keyword is a line of any LM corpus."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import pytest

# The installed package's data/ directory, found without importing xlt (which would import torch).
_SPEC = find_spec("xlt")
assert _SPEC is not None and _SPEC.origin is not None
DATA = Path(_SPEC.origin).resolve().parent / "data"
LANGUAGES = ("ar", "bg", "cs", "de", "el", "en", "es", "ml", "ro", "ru", "sl", "sk", "sw", "te", "ur", "zh")
FIELDS = {"id", "emoji", "text", "label", "keywords"}


def key(text: str) -> str:
    return text.strip().casefold()


@cache
def manifest() -> dict:
    return json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))


@cache
def rows(relative: str) -> tuple[dict, ...]:
    out = []
    with (DATA / relative).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            assert line.endswith("\n") and line.strip(), f"{relative}:{number}: empty or unterminated line"
            out.append(json.loads(line))
    return tuple(out)


def emoji_files() -> list[str]:
    return ["emoji/train.jsonl", "emoji/dev.jsonl", *(f"emoji/test/{lang}.jsonl" for lang in LANGUAGES)]


@cache
def corpus(lang: str) -> tuple[str, ...]:
    return tuple((DATA / "corpora" / f"{lang}.txt").read_text(encoding="utf-8").split("\n")[:-1])


def test_manifest_files_exist_with_their_sha256():
    files = manifest()["files"]
    expected = {*emoji_files(), *(f"corpora/{lang}.txt" for lang in LANGUAGES)}
    expected |= {"README.md", "LICENSE-UNICODE.txt", "LICENSE-DJANGO.txt"}
    assert expected <= set(files)
    for relative, info in files.items():
        payload = (DATA / relative).read_bytes()
        assert hashlib.sha256(payload).hexdigest() == info["sha256"], relative
        assert len(payload) == info["bytes"], relative
    shipped = {
        p.relative_to(DATA).as_posix()
        for p in DATA.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.relative_to(DATA).parts[0] != "parallel"
    }
    assert shipped == set(files) | {"manifest.json"}


def test_manifest_records_sources_and_counts():
    m = manifest()
    assert m["sources"]["django"]["version"]
    assert m["sources"]["cldr"]["version"]
    assert m["sources"]["emoji_test"]["version"]
    assert m["emoji"]["split"]["salt"]
    for lang in LANGUAGES:
        counts = m["languages"][lang]
        assert counts["emoji_test"] == len(rows(f"emoji/test/{lang}.jsonl"))
        assert counts["corpus_lines"] == len(corpus(lang))
        assert counts["corpus_characters"] == sum(map(len, corpus(lang)))
    assert m["languages"]["en"]["emoji_train"] == len(rows("emoji/train.jsonl"))
    assert m["languages"]["en"]["emoji_dev"] == len(rows("emoji/dev.jsonl"))


@pytest.mark.parametrize("relative", emoji_files())
def test_emoji_files_are_jsonl_with_the_fields(relative):
    data = rows(relative)
    assert data
    for row in data:
        assert set(row) == FIELDS, relative
        assert isinstance(row["id"], str) and row["id"]
        assert row["id"] == "-".join(f"{ord(ch):04X}" for ch in row["emoji"])
        assert isinstance(row["text"], str) and row["text"].strip() == row["text"] and row["text"]
        assert isinstance(row["label"], str) and row["label"]
        assert isinstance(row["keywords"], list) and all(isinstance(k, str) and k for k in row["keywords"])
    ids = [row["id"] for row in data]
    assert len(ids) == len(set(ids)), f"{relative}: duplicate ids"


def test_test_split_is_parallel_and_disjoint_from_train_and_dev():
    reference = [(row["id"], row["label"]) for row in rows("emoji/test/en.jsonl")]
    for lang in LANGUAGES:
        assert [(row["id"], row["label"]) for row in rows(f"emoji/test/{lang}.jsonl")] == reference, lang
    test_ids = {i for i, _ in reference}
    train_ids = {row["id"] for row in rows("emoji/train.jsonl")}
    dev_ids = {row["id"] for row in rows("emoji/dev.jsonl")}
    assert not test_ids & train_ids
    assert not test_ids & dev_ids
    assert not train_ids & dev_ids
    train_labels = {row["label"] for row in rows("emoji/train.jsonl")}
    test_labels = {label for _, label in reference}
    assert len(test_labels) >= 2
    assert test_labels <= train_labels
    assert {row["label"] for row in rows("emoji/dev.jsonl")} <= train_labels


def test_no_corpus_line_is_an_emoji_name_or_keyword():
    emoji_strings = {
        key(text) for relative in emoji_files() for row in rows(relative) for text in [row["text"], *row["keywords"]]
    }
    for lang in LANGUAGES:
        leaked = sorted({line for line in corpus(lang) if key(line) in emoji_strings})
        assert not leaked, f"{lang}: {leaked[:10]}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_corpus_is_large_enough_unique_and_clean(lang):
    lines = corpus(lang)
    assert sum(map(len, lines)) >= 50_000
    assert len(lines) == len(set(lines))
    assert all(line and line == line.strip() and "\n" not in line for line in lines)
    assert lines != tuple(sorted(lines)), "corpora are in a hash order, not sorted"


# --------------------------------------------------------------------------------------------- parallel text

TARGETS = tuple(lang for lang in LANGUAGES if lang != "en")


@cache
def parallel_manifest() -> dict:
    return json.loads((DATA / "parallel" / "manifest.json").read_text(encoding="utf-8"))


def test_parallel_files_match_their_manifest():
    files = parallel_manifest()["files"]
    assert set(files) == {f"{lang}.jsonl" for lang in TARGETS}
    for relative, info in files.items():
        payload = (DATA / "parallel" / relative).read_bytes()
        assert hashlib.sha256(payload).hexdigest() == info["sha256"], relative
        assert len(payload) == info["bytes"], relative
    shipped = {p.name for p in (DATA / "parallel").iterdir() if p.is_file()}
    assert shipped == set(files) | {"manifest.json"}


@pytest.mark.parametrize("lang", TARGETS)
def test_parallel_pairs_hold_no_emoji_name_or_keyword(lang):
    emoji_strings = {
        key(text) for relative in emoji_files() for row in rows(relative) for text in [row["text"], *row["keywords"]]
    }
    pairs = rows(f"parallel/{lang}.jsonl")
    assert len(pairs) >= 1500
    leaked = sorted({side for row in pairs for side in (row["en"], row["text"]) if key(side) in emoji_strings})
    assert not leaked, f"{lang}: {leaked[:10]}"


@pytest.mark.parametrize("lang", TARGETS)
def test_parallel_split_keeps_english_strings_apart(lang):
    pairs = rows(f"parallel/{lang}.jsonl")
    assert all(set(row) == {"en", "text", "split"} for row in pairs)
    by_split = {split: {row["en"].casefold() for row in pairs if row["split"] == split} for split in ("train", "dev")}
    assert set(row["split"] for row in pairs) == {"train", "dev"}
    assert not by_split["train"] & by_split["dev"]
    assert 0.05 < len([r for r in pairs if r["split"] == "dev"]) / len(pairs) < 0.2
    assert len({(row["en"], row["text"]) for row in pairs}) == len(pairs)
