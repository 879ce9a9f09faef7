#!/usr/bin/env python3
"""Build the demo data shipped in ``src/xlt/data/``: an emoji-group classification task and small LM corpora.

Sources (all redistributable; their notices are copied next to the data):

* Unicode CLDR ``common/`` tree (Debian ``unicode-cldr-core``, CLDR 41; Unicode licence):
  ``annotations/{lang}.xml`` (emoji short names, ``type="tts"``, and keywords), ``main/{lang}*.xml`` (display
  names of territories, languages, scripts, currencies, cities, calendar fields, units, ...) and
  ``subdivisions/{lang}.xml`` (region names).
* ``emoji-test.txt`` (Debian ``unicode-data``, Unicode emoji 15.0; Unicode licence): the group of every emoji.
* The gettext catalogs in the Django wheel (BSD-3-Clause), pinned to ``DJANGO_VERSION`` below:
  ``django/conf/locale/{loc}/LC_MESSAGES/*.po`` and ``django/contrib/*/locale/{loc}/LC_MESSAGES/*.po``.

What it writes under ``--out`` (default ``src/xlt/data``):

* ``emoji/train.jsonl``, ``emoji/dev.jsonl`` (English) and ``emoji/test/{lang}.jsonl`` (16 languages, parallel):
  one JSON object a line with ``id``, ``emoji``, ``text`` (the CLDR tts name), ``label`` (the emoji-test.txt
  group) and ``keywords``. The split is by emoji, from a salted SHA-256 of the id, so no emoji of the test set
  is in train or dev; test holds only emoji named in all 16 languages.
* ``corpora/{lang}.txt``: de-duplicated strings, one a line, in a deterministic hash order, with every string
  that equals (casefolded) an emoji name or keyword of any language removed.
* ``parallel/{lang}.jsonl`` (the 15 languages other than English) with its own ``parallel/manifest.json``:
  English-X pairs of keyed strings, ``{"en", "text", "split"}``: CLDR names matched by element key (languages,
  scripts, territories, currencies, long unit names, calendar fields, cities, time zones, subdivisions) and
  reviewed Django translations (msgid, msgstr); no pair with either side equal to an emoji name or keyword of
  any language; train/dev split by a salted hash of the English side.
* ``manifest.json`` (versions, counts, SHA-256 of every file but ``parallel/``), ``README.md``,
  ``LICENSE-UNICODE.txt`` and ``LICENSE-DJANGO.txt``.

How to run (from the repository root)::

    sudo apt-get install unicode-cldr-core unicode-data
    python scripts/build_demo_data.py                      # downloads the pinned Django wheel with pip
    python scripts/build_demo_data.py --django-wheel django-5.2.19-py3-none-any.whl   # or use a local wheel

The output is deterministic (same inputs, same bytes) and is written atomically: everything is built in a
temporary directory next to ``--out``, which then replaces ``--out`` as a whole.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

LANGUAGES: tuple[str, ...] = (
    "ar", "bg", "cs", "de", "el", "en", "es", "ml", "ro", "ru", "sl", "sk", "sw", "te", "ur", "zh",
)  # fmt: skip
SOURCE_LANGUAGE = "en"
DJANGO_VERSION = "5.2.19"
# Django locale directories per language where they differ from the code. zh takes Traditional Chinese as well
# as Simplified (main/zh_Hant*.xml are included like every main/{lang}_*.xml): CLDR subdivisions/zh.xml already
# mixes both scripts, and Simplified text alone falls short of 50k characters (Chinese needs about a third of
# the characters of the other languages for the same strings).
DJANGO_LOCALES: dict[str, tuple[str, ...]] = {"zh": ("zh_Hans", "zh_Hant")}

SPLIT_SALT = "xlt-emoji-split-v1"
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.6, "dev": 0.1, "test": 0.3}
CORPUS_ORDER_SALT = "xlt-corpus-order-v1"
DROPPED_GROUPS: tuple[str, ...] = ("Component",)  # 9 skin-tone/hair components: too few, and not really emoji

DEFAULT_CLDR = Path("/usr/share/unicode/cldr/common")
DEFAULT_EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
DEFAULT_UNICODE_LICENSE = Path("/usr/share/doc/unicode-cldr-core/copyright")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "src" / "xlt" / "data"

FE0F = "\ufe0f"

# Elements of main/*.xml whose text is a pattern or a character list, not language.
SKIP_TAGS: frozenset[str] = frozenset(
    {
        "pattern", "dateFormatItem", "intervalFormatItem", "greatestDifference", "intervalFormatFallback",
        "appendItem", "hourFormat", "gmtFormat", "gmtZeroFormat", "regionFormat", "fallbackFormat",
        "exemplarCharacters", "parseLenient", "listPatternPart", "localeSeparator", "localePattern",
        "localeKeyTypePattern", "codePattern", "datetimeSkeleton", "dateTimeFormat", "defaultNumberingSystem",
        "minimumGroupingDigits", "decimal", "group", "list", "percentSign", "plusSign", "minusSign",
        "approximatelySign", "exponential", "superscriptingExponent", "perMille", "infinity", "nan",
        "timeSeparator", "currencyDecimal", "currencyGroup", "currencyMatch", "surroundingMatch",
        "insertBetween", "beforeCurrency", "afterCurrency", "compoundUnitPattern", "compoundUnitPattern1",
        "coordinateUnitPattern", "unitPrefixPattern", "perUnitPattern", "quotationStart", "quotationEnd",
        "alternateQuotationStart", "alternateQuotationEnd", "contextTransform", "version", "generation",
        "nativeZeroDigit", "patternDigit", "inList", "inText", "ellipsis", "moreInformation",
    }
)  # fmt: skip

# {0}, {name}, %(name)s, %s, %d ... (Python, CLDR and gettext placeholders).
PLACEHOLDER = re.compile(
    r"%\([^)]*\)[-#0 +]*\d*(?:\.\d+)?[sdifrxXgGeEc]"
    r"|%[-#0 +]*\d*(?:\.\d+)?[sdifrxXgGeEc]"
    r"|\{[^{}\s]*\}"
)
HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


# --------------------------------------------------------------------------------------------------- helpers


def match_key(text: str) -> str:
    """The key under which corpus strings and emoji names are compared (stricter than casefold + strip)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def unit_hash(salt: str, text: str) -> float:
    """A number in [0, 1) from a salted SHA-256: stable across runs, machines and Python versions."""
    digest = hashlib.sha256(f"{salt}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clean_string(raw: str) -> str | None:
    """Placeholders and HTML tags removed, whitespace collapsed; None for strings that are not language.

    A string is kept when at least 2 characters long and holding at least one letter (so pure patterns such as
    ``{0} {1}``, numbers, punctuation and symbols go).
    """
    text = PLACEHOLDER.sub(" ", raw).replace("%%", "%")
    text = HTML_TAG.sub(" ", text)
    text = unicodedata.normalize("NFC", " ".join(text.split()))
    text = re.sub(r"\(\s*\)|\[\s*\]|“\s*”|«\s*»|\"\s*\"", " ", text)  # brackets emptied by the removals
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.;:!?)»”])", r"\1", text)
    text = text.strip(" ,;:")
    if len(text) < 2 or not any(unicodedata.category(ch).startswith("L") for ch in text):
        return None
    return text


# ----------------------------------------------------------------------------------------------- emoji task


@dataclass(frozen=True)
class EmojiInfo:
    """One fully-qualified emoji from emoji-test.txt."""

    sequence: str
    group: str
    subgroup: str


@dataclass
class Annotation:
    """A language's CLDR annotation of one code point sequence."""

    tts: str | None = None
    keywords: list[str] = field(default_factory=list)


def read_emoji_test(path: Path) -> tuple[dict[str, EmojiInfo], str]:
    """Map the FE0F-stripped sequence of every emoji to its fully-qualified form and group; and the version."""
    table: dict[str, EmojiInfo] = {}
    version = ""
    group = subgroup = ""
    qualified: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# Version:"):
            version = line.split(":", 1)[1].strip()
        elif line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            points, rest = line.split(";", 1)
            status = rest.split("#", 1)[0].strip()
            sequence = "".join(chr(int(cp, 16)) for cp in points.split())
            key = sequence.replace(FE0F, "")
            if status in ("fully-qualified", "component"):
                qualified[key] = sequence
                table[key] = EmojiInfo(sequence, group, subgroup)
            else:  # minimally-qualified / unqualified forms share the key of their fully-qualified form
                table.setdefault(key, EmojiInfo(qualified.get(key, sequence), group, subgroup))
    if not version:
        raise SystemExit(f"{path}: no '# Version:' line")
    return table, version


def read_annotations(path: Path) -> dict[str, Annotation]:
    """The annotations of one CLDR file, keyed by the FE0F-stripped code point sequence."""
    result: dict[str, Annotation] = {}
    for element in ET.parse(path).getroot().iter("annotation"):
        if element.get("draft") in ("unconfirmed", "provisional"):
            continue
        text = " ".join((element.text or "").split())
        if not text or text == "↑↑↑":
            continue
        key = element.get("cp", "").replace(FE0F, "")
        entry = result.setdefault(key, Annotation())
        if element.get("type") == "tts":
            entry.tts = text
        else:
            seen: list[str] = []
            for word in (w.strip() for w in text.split("|")):
                if word and word not in seen:
                    seen.append(word)
            entry.keywords = seen
    return result


def emoji_id(sequence: str) -> str:
    return "-".join(f"{ord(ch):04X}" for ch in sequence)


def bucket_of(identifier: str) -> str:
    u = unit_hash(SPLIT_SALT, identifier)
    edge = 0.0
    for name, fraction in SPLIT_FRACTIONS.items():
        edge += fraction
        if u < edge:
            return name
    return list(SPLIT_FRACTIONS)[-1]


@dataclass
class EmojiBuild:
    rows: dict[str, dict[str, list[dict[str, object]]]]  # split -> lang -> rows
    blocked: set[str]  # match keys of every name and keyword of every annotation in every language
    stats: dict[str, object]


def build_emoji(cldr: Path, emoji_test: Path) -> tuple[EmojiBuild, str]:
    groups, emoji_version = read_emoji_test(emoji_test)
    annotations = {lang: read_annotations(cldr / "annotations" / f"{lang}.xml") for lang in LANGUAGES}

    # Names and keywords kept out of the corpora: every annotation file of the 16 languages, regional and script
    # variants included (their text, e.g. main/zh_Hant.xml, reaches the corpora too).
    blocking_files = sorted(
        path
        for lang in LANGUAGES
        for path in [cldr / "annotations" / f"{lang}.xml", *(cldr / "annotations").glob(f"{lang}_*.xml")]
    )
    blocked: set[str] = set()
    for path in blocking_files:
        for entry in read_annotations(path).values():
            for text in [entry.tts, *entry.keywords]:
                if text:
                    blocked.add(match_key(text))

    group_sizes = Counter(info.group for key, info in groups.items() if info.sequence.replace(FE0F, "") == key)
    named = {key for key, entry in annotations[SOURCE_LANGUAGE].items() if entry.tts}
    no_group = sorted(key for key in named if key not in groups)
    candidates = sorted(
        (key for key in named if key in groups and groups[key].group not in DROPPED_GROUPS),
        key=lambda k: emoji_id(groups[k].sequence),
    )
    dropped_group = sorted(key for key in named if key in groups and groups[key].group in DROPPED_GROUPS)

    rows: dict[str, dict[str, list[dict[str, object]]]] = {"train": {}, "dev": {}, "test": {}}
    order: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    not_parallel: list[str] = []
    for key in candidates:
        identifier = emoji_id(groups[key].sequence)
        bucket = bucket_of(identifier)
        if bucket == "test" and not all(annotations[lang].get(key, Annotation()).tts for lang in LANGUAGES):
            not_parallel.append(identifier)  # hashed into test but not named in every language: left out
            continue
        order[bucket].append(key)
    for bucket, keys in order.items():
        keys.sort(key=lambda k: (unit_hash(f"{SPLIT_SALT}/order", emoji_id(groups[k].sequence)), k))
        langs = LANGUAGES if bucket == "test" else (SOURCE_LANGUAGE,)
        for lang in langs:
            rows[bucket][lang] = [
                {
                    "id": emoji_id(groups[key].sequence),
                    "emoji": groups[key].sequence,
                    "text": annotations[lang][key].tts,
                    "label": groups[key].group,
                    "keywords": annotations[lang][key].keywords,
                }
                for key in keys
            ]

    missing_tts = {
        lang: sum(1 for key in candidates if not annotations[lang].get(key, Annotation()).tts) for lang in LANGUAGES
    }
    stats: dict[str, object] = {
        "emoji_test_group_sizes": dict(sorted(group_sizes.items())),
        "english_tts_entries": len(named),
        "english_tts_without_group": len(no_group),
        "dropped_groups": {g: sum(1 for k in dropped_group if groups[k].group == g) for g in DROPPED_GROUPS},
        "candidates": len(candidates),
        "hashed_to_test_but_not_parallel": len(not_parallel),
        "candidates_without_tts": missing_tts,
        "blocking_annotation_files": [path.name for path in blocking_files],
        "blocked_strings": len(blocked),
    }
    return EmojiBuild(rows, blocked, stats), emoji_version


# --------------------------------------------------------------------------------------------------- corpora


def cldr_strings(path: Path) -> Iterator[str]:
    """The element texts of one CLDR LDML file, minus patterns and character lists."""
    root = ET.parse(path).getroot()
    stack: list[tuple[ET.Element, bool]] = [(root, False)]
    while stack:
        element, skipped = stack.pop()
        skip = skipped or element.tag in SKIP_TAGS or element.tag == "identity"
        if not skip and element.text and element.text.strip() and element.text.strip() != "↑↑↑":
            yield element.text
        stack.extend((child, skip) for child in reversed(list(element)))


def main_files(cldr: Path, lang: str) -> list[Path]:
    return [cldr / "main" / f"{lang}.xml", *sorted((cldr / "main").glob(f"{lang}_*.xml"))]


def _unquote(token: str) -> str:
    """The value of one C-style double-quoted .po string."""
    body = token.strip()
    if not (body.startswith('"') and body.endswith('"')) or len(body) < 2:
        raise ValueError(f"not a quoted string: {token!r}")
    out: list[str] = []
    chars = iter(body[1:-1])
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(escapes.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class PoEntry:
    msgid: str = ""
    msgid_plural: str = ""
    msgstr: dict[int, str] = field(default_factory=dict)
    fuzzy: bool = False


def parse_po(text: str) -> list[PoEntry]:
    """A small gettext .po parser: msgctxt/msgid/msgid_plural/msgstr[n], continuation lines, fuzzy flags.

    Obsolete entries (``#~``) are ignored.
    """
    entries: list[PoEntry] = []
    entry = PoEntry()
    current: tuple[str, int] | None = None
    started = False

    def flush() -> None:
        nonlocal entry, started, current
        if started:
            entries.append(entry)
        entry, started, current = PoEntry(), False, None

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("#"):
            if started and current is not None and current[0] == "msgstr":
                flush()  # a comment after the msgstr opens the next entry
            if line.startswith("#,") and "fuzzy" in line:
                entry.fuzzy = True
            continue
        if line.startswith('"'):
            if current is None:
                raise ValueError(f"continuation line outside an entry: {raw!r}")
            kind, index = current
            value = _unquote(line)
            if kind == "msgid":
                entry.msgid += value
            elif kind == "msgid_plural":
                entry.msgid_plural += value
            elif kind == "msgstr":
                entry.msgstr[index] += value
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgctxt", "msgid") and current is not None and current[0] == "msgstr":
            flush()  # an entry that follows the previous one without a blank line
        started = True
        if keyword == "msgctxt":
            current = ("msgctxt", 0)
        elif keyword == "msgid":
            entry.msgid = _unquote(rest)
            current = ("msgid", 0)
        elif keyword == "msgid_plural":
            entry.msgid_plural = _unquote(rest)
            current = ("msgid_plural", 0)
        elif keyword.startswith("msgstr"):
            match = re.fullmatch(r"msgstr(?:\[(\d+)\])?", keyword)
            if not match:
                raise ValueError(f"bad keyword: {raw!r}")
            index = int(match.group(1) or 0)
            entry.msgstr[index] = _unquote(rest)
            current = ("msgstr", index)
        else:
            raise ValueError(f"unknown .po line: {raw!r}")
    flush()
    return entries


def django_catalogs(wheel: zipfile.ZipFile, locale: str) -> list[str]:
    pattern = re.compile(rf"django/(?:conf|contrib/[^/]+)/locale/{re.escape(locale)}/LC_MESSAGES/[^/]+\.po")
    return sorted(name for name in wheel.namelist() if pattern.fullmatch(name))


def django_strings(wheel: zipfile.ZipFile, lang: str) -> Iterator[str]:
    """Translated strings (msgstr, every plural form); for English, whose msgstr are empty, the msgids."""
    names: list[str] = []
    for locale in DJANGO_LOCALES.get(lang, (lang,)):
        found = django_catalogs(wheel, locale)
        if not found:
            raise SystemExit(f"the Django wheel has no catalogs for {locale}")
        names += found
    for name in names:
        for entry in parse_po(wheel.read(name).decode("utf-8")):
            if not entry.msgid or entry.fuzzy:
                continue  # the header, and unreviewed translations
            if lang == SOURCE_LANGUAGE:
                yield entry.msgid
                if entry.msgid_plural:
                    yield entry.msgid_plural
            yield from (value for _, value in sorted(entry.msgstr.items()) if value)


@dataclass
class CorpusBuild:
    lines: list[str]
    stats: dict[str, int]


def build_corpus(cldr: Path, wheel: zipfile.ZipFile, lang: str, blocked: set[str]) -> CorpusBuild:
    sources: dict[str, Iterable[str]] = {}
    sources["cldr_main"] = (s for path in main_files(cldr, lang) for s in cldr_strings(path))
    subdivisions = cldr / "subdivisions" / f"{lang}.xml"
    sources["cldr_subdivisions"] = cldr_strings(subdivisions) if subdivisions.exists() else ()
    sources["django"] = django_strings(wheel, lang)

    kept: dict[str, str] = {}  # exact string -> first source (de-duplication is on the exact string)
    removed: set[str] = set()
    raw_counts: dict[str, int] = {}
    for source, strings in sources.items():
        count = 0
        for raw in strings:
            count += 1
            text = clean_string(raw)
            if text is None or text in kept:
                continue
            if match_key(text) in blocked:
                removed.add(text)
                continue
            kept[text] = source
        raw_counts[source] = count
    lines = sorted(kept, key=lambda s: (unit_hash(f"{CORPUS_ORDER_SALT}/{lang}", s), s))
    per_source = Counter(kept.values())
    stats = {
        "lines": len(lines),
        "characters": sum(len(s) for s in lines),
        "removed_emoji_strings": len(removed),
        **{f"raw_{k}": v for k, v in raw_counts.items()},
        **{f"lines_{k}": per_source.get(k, 0) for k in sources},
    }
    return CorpusBuild(lines, stats)


# -------------------------------------------------------------------------------------------- parallel text

PARALLEL_SALT = "xlt-parallel-split-v1"
PARALLEL_DEV_FRACTION = 0.1
# The keyed CLDR sections whose strings are names (not patterns), parallel across languages by their key.
PARALLEL_SECTIONS: tuple[tuple[str, ...], ...] = (
    ("localeDisplayNames", "languages"),
    ("localeDisplayNames", "scripts"),
    ("localeDisplayNames", "territories"),
    ("localeDisplayNames", "variants"),
    ("localeDisplayNames", "keys"),
    ("localeDisplayNames", "types"),
    ("localeDisplayNames", "measurementSystemNames"),
    ("numbers", "currencies"),
    ("units", "unitLength"),
    ("dates", "fields"),
    ("dates", "timeZoneNames"),
)
KEY_ATTRIBUTES: tuple[str, ...] = ("type", "key", "alt", "count", "case", "gender")
# Within those sections, names only: abbreviated units, relative-time phrases and the specific/daylight time zone
# names would add near-duplicates and fragments rather than names.
NAME_KEY = re.compile(
    r"/units/unitLength\[type=long\]/unit\[[^]]*\]/displayName"
    r"|/dates/fields/field\[[^]]*\]/displayName"
    r"|/dates/timeZoneNames/zone\[[^]]*\]/exemplarCity"
    r"|/dates/timeZoneNames/metazone\[[^]]*\]/long/generic"
    r"|/(?:localeDisplayNames|numbers/currencies)/.*"
)


def keyed_strings(path: Path, prefixes: tuple[tuple[str, ...], ...]) -> dict[str, str]:
    """Element texts of one LDML file by a key made of the element path and its distinguishing attributes,
    within ``prefixes`` (tag paths below the root); unconfirmed and provisional drafts and patterns skipped."""
    out: dict[str, str] = {}

    def walk(element: ET.Element, tags: tuple[str, ...], key: str) -> None:
        for child in element:
            if child.tag in SKIP_TAGS or child.get("draft") in ("unconfirmed", "provisional"):
                continue
            child_tags = (*tags, child.tag)
            if not any(child_tags[: len(p)] == p[: len(child_tags)] for p in prefixes):
                continue
            attrs = ",".join(f"{a}={child.get(a)}" for a in KEY_ATTRIBUTES if child.get(a) is not None)
            child_key = f"{key}/{child.tag}" + (f"[{attrs}]" if attrs else "")
            text = (child.text or "").strip()
            if (
                text
                and text != "↑↑↑"
                and any(child_tags[: len(p)] == p for p in prefixes)
                and (tags[:1] == ("subdivisions",) or NAME_KEY.fullmatch(child_key))
            ):
                out[child_key] = text
            walk(child, child_tags, child_key)

    walk(ET.parse(path).getroot(), (), "")
    return out


def django_pairs(wheel: zipfile.ZipFile, lang: str) -> dict[str, tuple[str, str]]:
    """(msgid, msgstr of the singular form) of the language's reviewed Django translations, keyed by catalog
    and msgid; the first locale of ``DJANGO_LOCALES`` only (zh: Simplified)."""
    locale = DJANGO_LOCALES.get(lang, (lang,))[0]
    out: dict[str, tuple[str, str]] = {}
    for name in django_catalogs(wheel, locale):
        catalog = name.replace(f"/locale/{locale}/", "/locale/*/")
        for entry in parse_po(wheel.read(name).decode("utf-8")):
            if entry.msgid and not entry.fuzzy and entry.msgstr.get(0):
                out[f"django:{catalog}:{entry.msgid}"] = (entry.msgid, entry.msgstr[0])
    return out


@dataclass
class ParallelBuild:
    rows: list[dict[str, str]]
    stats: dict[str, int]


def build_parallel(
    cldr: Path, wheel: zipfile.ZipFile, lang: str, english: dict[str, str], blocked: set[str]
) -> ParallelBuild:
    """English-``lang`` pairs of keyed strings: CLDR names (main/{lang}.xml by element key, subdivisions by code)
    and Django translations (msgid, msgstr). A pair goes when either side, cleaned, is not language or equals an
    emoji name or keyword of any language (``blocked``); one pair per distinct (English, text). Split into train
    and dev by a salted hash of the English side, so no English string is in both."""
    theirs = {f"main:{k}": v for k, v in keyed_strings(cldr / "main" / f"{lang}.xml", PARALLEL_SECTIONS).items()}
    subdivisions = cldr / "subdivisions" / f"{lang}.xml"
    if subdivisions.exists():
        theirs.update({f"sub:{k}": v for k, v in keyed_strings(subdivisions, (("subdivisions",),)).items()})
    django = django_pairs(wheel, lang)
    theirs.update({key: text for key, (_, text) in django.items()})
    english = {**english, **{key: msgid for key, (msgid, _) in django.items()}}
    seen: set[tuple[str, str]] = set()
    rows: list[dict[str, str]] = []
    blocked_pairs = 0
    for key in sorted(theirs):
        source, text = clean_string(english.get(key, "")), clean_string(theirs[key])
        if source is None or text is None:
            continue
        if match_key(source) in blocked or match_key(text) in blocked:
            blocked_pairs += 1
            continue
        if (source, text) in seen:
            continue
        seen.add((source, text))
        split = "dev" if unit_hash(PARALLEL_SALT, match_key(source)) < PARALLEL_DEV_FRACTION else "train"
        rows.append({"en": source, "text": text, "split": split, "_key": key})
    rows.sort(key=lambda r: (unit_hash(f"{PARALLEL_SALT}/order/{lang}", r["_key"]), r["_key"]))
    django_pairs_kept = sum(1 for r in rows if r["_key"].startswith("django:"))
    for row in rows:
        del row["_key"]  # provenance is in the manifest's counts: the keys would double the files' size
    stats = {
        "pairs": len(rows),
        "train": sum(1 for r in rows if r["split"] == "train"),
        "dev": sum(1 for r in rows if r["split"] == "dev"),
        "removed_emoji_pairs": blocked_pairs,
        "django": django_pairs_kept,
    }
    return ParallelBuild(rows, stats)


# ------------------------------------------------------------------------------------------------- licences


def unicode_license_text(copyright_file: Path) -> str:
    """The Unicode licence from a Debian copyright file (the indented text of its first License field)."""
    lines = copyright_file.read_text(encoding="utf-8").splitlines()
    body: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("License:"):
            if inside:
                break
            inside = True
            continue
        if inside:
            if not line.startswith(" "):
                break
            body.append("" if line.strip() == "." else line[1:].rstrip())
    if not body or "Unicode" not in "\n".join(body):
        raise SystemExit(f"{copyright_file}: no Unicode licence text found")
    return "\n".join(body).strip() + "\n"


def django_license_text(wheel: zipfile.ZipFile) -> str:
    names = [n for n in wheel.namelist() if re.fullmatch(r"[^/]+\.dist-info/(?:licenses/)?LICENSE", n)]
    if not names:
        raise SystemExit("no LICENSE in the Django wheel's dist-info")
    return wheel.read(sorted(names)[0]).decode("utf-8")


def django_version_of(wheel: zipfile.ZipFile) -> str:
    for name in wheel.namelist():
        if name.endswith(".dist-info/METADATA"):
            for line in wheel.read(name).decode("utf-8").splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    raise SystemExit("no Version in the Django wheel's METADATA")


def cldr_version_of(cldr: Path) -> str:
    match = re.search(r'cldrVersion\s+CDATA\s+#FIXED\s+"([^"]+)"', (cldr / "dtd" / "ldml.dtd").read_text())
    if not match:
        raise SystemExit(f"no cldrVersion in {cldr / 'dtd' / 'ldml.dtd'}")
    return match.group(1)


# ---------------------------------------------------------------------------------------------------- output


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, separators=(", ", ": ")) + "\n")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def readme_text(manifest: dict[str, object]) -> str:
    sources = manifest["sources"]
    assert isinstance(sources, dict)
    langs = manifest["languages"]
    assert isinstance(langs, dict)
    labels = manifest["emoji"]["labels"]  # type: ignore[index]
    emoji = manifest["emoji"]
    assert isinstance(emoji, dict)
    total_bytes = sum(f["bytes"] for f in manifest["files"].values())  # type: ignore[attr-defined]
    rows = "\n".join(
        f"| {lang} | {c['emoji_test']} | {c['corpus_lines']:,} | {c['corpus_characters']:,} | "
        f"{c['corpus_removed_emoji_strings']} |"
        for lang, c in langs.items()
    )
    label_rows = "\n".join(f"| {label} | {n['train']} | {n['dev']} | {n['test']} |" for label, n in labels.items())
    stats = emoji["stats"]
    missing = ", ".join(f"{lang}: {n}" for lang, n in stats["candidates_without_tts"].items() if n) or "none"
    dropped = ", ".join(f"{g} ({n} emoji)" for g, n in stats["dropped_groups"].items())
    return f"""# Demo data shipped with xlt

Generated by `scripts/build_demo_data.py`; do not edit by hand. Total size {total_bytes / 1e6:.1f} MB.
`manifest.json` records the sources, versions, counts and the SHA-256 of every file.

## Sources and licences

| What | From | Licence |
|---|---|---|
| `emoji/` names and keywords, `corpora/` CLDR strings | Unicode CLDR {sources["cldr"]["version"]} \
(Debian `unicode-cldr-core`): `annotations/{{lang}}.xml`, `main/{{lang}}*.xml`, `subdivisions/{{lang}}.xml` \
| Unicode licence, `LICENSE-UNICODE.txt` |
| `emoji/` labels | `emoji-test.txt`, Unicode emoji {sources["emoji_test"]["version"]} (Debian `unicode-data`) \
| Unicode licence, `LICENSE-UNICODE.txt` |
| `corpora/` UI strings | gettext catalogs of Django {sources["django"]["version"]} (wheel from PyPI) \
| BSD-3-Clause, `LICENSE-DJANGO.txt` |

The files here are derived (modified) from those sources as described below. The build scripts are the
project's own (MIT).

## `emoji/`: emoji-group classification (zero-shot cross-lingual)

Each line: `{{"id": "1F468-200D-1F373", "emoji": "👨‍🍳", "text": "<CLDR tts name>", "label": "<group>",
"keywords": [...]}}`. `id` and `emoji` are the fully-qualified sequence of `emoji-test.txt`; `text` is the
`type="tts"` annotation of `annotations/{{lang}}.xml` (annotations are matched with U+FE0F stripped);
`keywords` is the other annotation split on ` | `; `label` is the emoji-test.txt group.

- `train.jsonl`, `dev.jsonl`: English only. `test/{{lang}}.jsonl`: the same emoji, in the same order, in each of
  the 16 languages.
- Split by emoji with SHA-256 of `"{SPLIT_SALT}\\0" + id` (≈ 60 / 10 / 30 %), so no test emoji is in train
  or dev. Only emoji with a tts name in all 16 languages go to test: {stats["hashed_to_test_but_not_parallel"]}
  emoji hash to test but lack a name in some language (emoji without a name, all splits: {missing}); they
  are left out of every split. Rows are in a salted-hash order (labels mixed).
- Only the base files `annotations/{{lang}}.xml` are used (regional files such as `sw_KE.xml` only override
  some entries; zh.xml is Simplified Chinese). Non-emoji symbols in the annotation files (no emoji-test group,
  {stats["english_tts_without_group"]} in English) are dropped, and so is the group {dropped}: skin tones and
  hair styles, too few and not emoji on their own. Country and subdivision flags are not in `annotations/`
  (CLDR derives their names), so `Flags` has only {sum(labels["Flags"].values()) if "Flags" in labels else 0}
  members.

| label | train | dev | test |
|---|---|---|---|
{label_rows}

## `corpora/`: text for language modelling

One string per line, UTF-8, de-duplicated, in a salted-hash order (not alphabetical). Sources:
CLDR `main/{{lang}}.xml` and `main/{{lang}}_*.xml` element texts (names of territories,
languages, scripts, currencies, cities, time zones, calendar fields, units ...; elements that hold patterns or
character lists are skipped), CLDR `subdivisions/{{lang}}.xml`, and the Django catalogs
`django/conf/locale/{{loc}}/LC_MESSAGES/*.po` and `django/contrib/*/locale/{{loc}}/LC_MESSAGES/*.po`
(`loc` = the language code; for zh both `zh_Hans` and `zh_Hant`; msgstr of every plural form, fuzzy entries
skipped; for English, whose msgstr are empty, the msgids). The zh corpus is Simplified and Traditional Chinese:
`subdivisions/zh.xml` already mixes both scripts, and Simplified text alone is under 50k characters.
Placeholders (`{{0}}`, `%(name)s`, `%s`, ...) and HTML tags are removed,
whitespace is collapsed, and strings shorter than 2 characters or without a letter are dropped.

**No emoji text in the corpora**: every string that equals (NFKC, casefolded, whitespace-collapsed) a tts name
or keyword of any annotation in `annotations/{{lang}}.xml` or `annotations/{{lang}}_*.xml` of the 16 languages
({stats["blocked_strings"]:,} distinct strings) is removed (counts below), so an LM trained on a corpus never
sees an input of the emoji task, or any other emoji name, as a line.

| lang | emoji test rows | corpus lines | corpus characters | removed (emoji names/keywords) |
|---|---|---|---|---|
{rows}

## Rebuild

```
sudo apt-get install unicode-cldr-core unicode-data
python scripts/build_demo_data.py            # pip-downloads django=={sources["django"]["version"]} (--no-deps)
python scripts/build_demo_data.py --django-wheel PATH/TO/django-{sources["django"]["version"]}-py3-none-any.whl
```

Options: `--cldr DIR` (default `/usr/share/unicode/cldr/common`), `--emoji-test FILE`, `--out DIR`
(default `src/xlt/data`). The output is deterministic and replaces `--out` atomically; `tests/test_demo_data.py`
checks the files against `manifest.json`.
"""


def build(args: argparse.Namespace, wheel_path: Path, staging: Path) -> dict[str, object]:
    cldr: Path = args.cldr
    emoji, emoji_version = build_emoji(cldr, args.emoji_test)
    cldr_version = cldr_version_of(cldr)

    for split in ("train", "dev"):
        write_jsonl(staging / "emoji" / f"{split}.jsonl", emoji.rows[split][SOURCE_LANGUAGE])
    for lang in LANGUAGES:
        write_jsonl(staging / "emoji" / "test" / f"{lang}.jsonl", emoji.rows["test"][lang])

    with zipfile.ZipFile(wheel_path) as wheel:
        django_version = django_version_of(wheel)
        if django_version != DJANGO_VERSION:
            print(f"warning: Django wheel is {django_version}, the pinned version is {DJANGO_VERSION}", file=sys.stderr)
        corpora = {lang: build_corpus(cldr, wheel, lang, emoji.blocked) for lang in LANGUAGES}
        english = {f"main:{k}": v for k, v in keyed_strings(cldr / "main" / "en.xml", PARALLEL_SECTIONS).items()}
        english.update(
            {f"sub:{k}": v for k, v in keyed_strings(cldr / "subdivisions" / "en.xml", (("subdivisions",),)).items()}
        )
        parallel = {
            lang: build_parallel(cldr, wheel, lang, english, emoji.blocked)
            for lang in LANGUAGES
            if lang != SOURCE_LANGUAGE
        }
        write_text(staging / "LICENSE-DJANGO.txt", django_license_text(wheel))
    for lang, corpus in corpora.items():
        write_text(staging / "corpora" / f"{lang}.txt", "".join(line + "\n" for line in corpus.lines))

    header = (
        "The files under emoji/ and the CLDR-derived lines of corpora/ are derived (modified: extracted,\n"
        f"filtered, split) from Unicode CLDR {cldr_version} (annotations/, main/, subdivisions/) and from\n"
        f"emoji-test.txt (Unicode emoji {emoji_version}), copyright Unicode, Inc., under the licence below.\n"
        "\n"
    )
    write_text(staging / "LICENSE-UNICODE.txt", header + unicode_license_text(args.unicode_license))

    labels = sorted({str(r["label"]) for split in emoji.rows.values() for rs in split.values() for r in rs})
    label_counts = {
        label: {
            split: sum(1 for r in emoji.rows[split][SOURCE_LANGUAGE] if r["label"] == label)
            for split in ("train", "dev", "test")
        }
        for label in labels
    }
    languages = {
        lang: {
            "emoji_train": len(emoji.rows["train"].get(lang, [])),
            "emoji_dev": len(emoji.rows["dev"].get(lang, [])),
            "emoji_test": len(emoji.rows["test"][lang]),
            "corpus_lines": corpora[lang].stats["lines"],
            "corpus_characters": corpora[lang].stats["characters"],
            "corpus_removed_emoji_strings": corpora[lang].stats["removed_emoji_strings"],
            "corpus_detail": {k: v for k, v in corpora[lang].stats.items() if k.startswith(("raw_", "lines_"))},
        }
        for lang in LANGUAGES
    }
    manifest: dict[str, object] = {
        "description": "Demo data for xlt: CLDR emoji-group classification and small LM corpora (16 languages).",
        "generator": "scripts/build_demo_data.py",
        "languages_order": list(LANGUAGES),
        "sources": {
            "cldr": {
                "version": cldr_version,
                "parts": ["annotations", "main", "subdivisions"],
                "licence": "Unicode (LICENSE-UNICODE.txt)",
            },
            "emoji_test": {
                "version": emoji_version,
                "sha256": sha256_file(args.emoji_test),
                "licence": "Unicode (LICENSE-UNICODE.txt)",
            },
            "django": {
                "version": django_version,
                "wheel": wheel_path.name,
                "wheel_sha256": sha256_file(wheel_path),
                "locales": {lang: list(DJANGO_LOCALES.get(lang, (lang,))) for lang in LANGUAGES},
                "licence": "BSD-3-Clause (LICENSE-DJANGO.txt)",
            },
        },
        "emoji": {
            "split": {
                "salt": SPLIT_SALT,
                "fractions": SPLIT_FRACTIONS,
                "hash": "sha256(salt + '\\0' + id)",
                "by": "emoji id",
                "test_requires_tts_in_all_languages": True,
            },
            "dropped_groups": list(DROPPED_GROUPS),
            "labels": label_counts,
            "stats": emoji.stats,
        },
        "corpora": {
            "order_salt": CORPUS_ORDER_SALT,
            "removed": "strings equal (NFKC, casefold, collapsed spaces) to any emoji tts name or keyword "
            "in annotations/{lang}.xml or annotations/{lang}_*.xml of the 16 languages",
        },
        "languages": languages,
    }
    files: dict[str, dict[str, object]] = {}
    for path in sorted(staging.rglob("*")):
        if path.is_file() and path.relative_to(staging).parts[0] != "parallel":
            files[path.relative_to(staging).as_posix()] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest["files"] = files
    write_text(staging / "README.md", readme_text(manifest))
    readme = staging / "README.md"
    files["README.md"] = {"sha256": sha256_file(readme), "bytes": readme.stat().st_size}
    manifest["files"] = dict(sorted(files.items()))
    write_text(staging / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    write_parallel(staging / "parallel", parallel, cldr_version, django_version)
    return manifest


def write_parallel(out: Path, parallel: dict[str, ParallelBuild], cldr_version: str, django_version: str) -> None:
    """``parallel/{lang}.jsonl`` with its own manifest: the data an alignment objective reads, kept apart from
    the emoji task and the corpora so that adding or changing it changes neither's manifest (whose digest every
    stored matrix result on the built-in data is keyed by)."""
    for lang, build in parallel.items():
        write_jsonl(out / f"{lang}.jsonl", build.rows)  # type: ignore[arg-type]
    manifest: dict[str, object] = {
        "description": "English-X pairs of keyed strings (CLDR names, Django translations) for alignment objectives.",
        "generator": "scripts/build_demo_data.py",
        "source_language": SOURCE_LANGUAGE,
        "sources": {
            "cldr": {"version": cldr_version, "sections": ["/".join(p) for p in PARALLEL_SECTIONS] + ["subdivisions"]},
            "django": {"version": django_version, "forms": "msgid -> msgstr[0], reviewed only"},
        },
        "split": {"salt": PARALLEL_SALT, "dev_fraction": PARALLEL_DEV_FRACTION, "by": "the cleaned English side"},
        "removed": "pairs either side of which equals (NFKC, casefold, collapsed spaces) any emoji tts name or keyword "
        "of the 16 languages' annotations",
        "languages": {lang: build.stats for lang, build in parallel.items()},
        "files": {
            f"{lang}.jsonl": {
                "sha256": sha256_file(out / f"{lang}.jsonl"),
                "bytes": (out / f"{lang}.jsonl").stat().st_size,
            }
            for lang in parallel
        },
    }
    write_text(out / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")


def fetch_django(directory: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"django=={DJANGO_VERSION}",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(directory),
            "-q",
        ],
        check=True,
    )
    wheels = sorted(directory.glob("[Dd]jango-*.whl"))
    if not wheels:
        raise SystemExit("pip did not download a Django wheel")
    return wheels[0]


def replace_dir(staging: Path, out: Path) -> None:
    """Swap the finished staging directory in for ``out`` (two renames; the old tree is removed after)."""
    old = out.with_name(out.name + ".old-build")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    if old.exists():
        shutil.rmtree(old)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cldr", type=Path, default=DEFAULT_CLDR, help="CLDR common/ directory")
    parser.add_argument("--emoji-test", type=Path, default=DEFAULT_EMOJI_TEST, help="emoji-test.txt")
    parser.add_argument(
        "--unicode-license",
        type=Path,
        default=DEFAULT_UNICODE_LICENSE,
        help="Debian copyright file holding the Unicode licence",
    )
    parser.add_argument(
        "--django-wheel",
        type=Path,
        default=None,
        help=f"a local django-{DJANGO_VERSION} wheel (default: pip download it)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (replaced as a whole)")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="xlt-django-") as download:
        wheel = args.django_wheel or fetch_django(Path(download))
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
        staging.chmod(0o755)
        try:
            manifest = build(args, wheel, staging)
            replace_dir(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    languages = manifest["languages"]
    assert isinstance(languages, dict)
    for lang, counts in languages.items():
        print(
            f"{lang}: emoji test {counts['emoji_test']}, corpus {counts['corpus_lines']} lines "
            f"{counts['corpus_characters']} chars, removed {counts['corpus_removed_emoji_strings']}"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
