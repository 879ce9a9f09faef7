"""Loading a ``HubSource`` with ``datasets`` and writing it as xlt's local JSONL files.

``materialize`` writes ``cache_dir/{task}/{language}/{train,dev,test}.jsonl`` in the source's schema:

* ``ner``: ``{"tokens": [str], "ner_tags": [str]}`` (IOB2 names such as ``B-PER``)
* ``nli``: ``{"premise": str, "hypothesis": str, "label": "entailment" | "neutral" | "contradiction"}``
* ``qa``: ``{"id": str, "question": str, "context": str, "answers": {"text": [str], "answer_start": [int]}}``

with ``manifest.json`` beside them (the source, its revision, row counts, rows dropped, QA answers repaired, the
seed). A second call with the same source finds the manifest and loads nothing. Every file is written atomically
and the manifest last, so an interrupted run is redone, never half-used.

QA answers are repaired on the way: national QA sets hold answers whose ``answer_start`` is a few characters off,
and xlt's schema reader refuses a whole file at the first such answer. An answer found at its start is kept; one
found elsewhere in its context moves to the occurrence nearest its start; one not in its context is dropped, and a
row left with no answer with it. The manifest counts both (``repaired``: answers moved, or dropped from a row that
keeps another; ``dropped``: rows).

The same code reads the hub and a local mirror: with ``data_dir``, ``data_dir / source.path`` is a directory laid
out like the hub repository (a ``huggingface-cli download --repo-type dataset`` of it, with
``--revision refs/convert/parquet`` for an ``export`` source), and ``load_dataset`` runs on it instead of the hub id.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from xlt.errors import XLTError
from xlt.formats.atomic import atomic_write, atomic_write_text, make_dir, owns
from xlt.tasks.sources import NLI_LABELS, SPLITS, HubSource, resolve

MANIFEST = "manifest.json"
# Bumped when the written files change meaning, so an older cache is rebuilt rather than reused
# (2: QA answers repaired, so a cache holding an answer off its context is not kept).
FORMAT = 2
# Hub repositories big enough that reading them as streams pays (rows are then never written as Arrow files by
# ``datasets`` beside xlt's JSONL): XNLI's train is 392k rows per language, SQuAD's 87.6k, MLQA's translate-train
# ~80k. The others hold at most a few tens of thousands of rows and load faster whole.
LARGE = frozenset({"facebook/xnli", "rajpurkar/squad", "facebook/mlqa"})


def default_cache_dir() -> Path:
    """``$XLT_CACHE/tasks``, or ``~/.cache/xlt/tasks``."""
    return Path(os.environ.get("XLT_CACHE") or Path.home() / ".cache" / "xlt") / "tasks"


def streams(source: HubSource) -> bool:
    """Whether ``source`` is read as a stream (its repository is in ``LARGE``)."""
    return source.path in LARGE


def _where(source: HubSource, config: str | None) -> str:
    return source.path + (f" ({config})" if config else "")


# ---- loading ----------------------------------------------------------------------------------------------------


def _load(source: HubSource, config: str | None, split: str, data_dir: Path | None, streaming: bool) -> Any:
    """One hub split as a ``datasets`` (Iterable)Dataset, from the hub or from the local mirror under ``data_dir``."""
    import datasets

    root = str(Path(data_dir) / source.path) if data_dir is not None else source.path
    if data_dir is not None and not Path(root).is_dir():
        raise XLTError(
            f"no local mirror of {source.path} at {root}; download the hub repository there or drop data_dir"
        )
    try:
        if source.layout == "files":
            base = root if data_dir is not None else f"hf://datasets/{source.path}"
            options: dict[str, Any] = {"field": source.json_field} if source.json_field else {}
            return datasets.load_dataset(
                source.file_format,
                data_files={split: f"{base}/{source.files[split]}"},
                split=split,
                streaming=streaming,
                **options,
            )
        if source.layout == "export":
            # The parquet export holds one folder per config and no card, so the config is a folder.
            revision = {} if data_dir is not None else {"revision": source.revision}
            return datasets.load_dataset(root, data_dir=config, split=split, streaming=streaming, **revision)
        return datasets.load_dataset(root, config, split=split, streaming=streaming)
    except XLTError:
        raise
    except Exception as exc:  # datasets raises many types (ValueError, FileNotFoundError, its own) for one cause
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise XLTError(
            f"cannot load split {split!r} of {_where(source, config)} from {root}: {reason} "
            f"(check the hub id, config and split, or the local mirror's layout)"
        ) from None


def _features(dataset: Any) -> Mapping[str, Any]:
    return getattr(dataset, "features", None) or {}


def _columns(dataset: Any, first: Mapping[str, Any] | None) -> list[str]:
    names = getattr(dataset, "column_names", None)
    if names:
        return list(names)
    return list(first or _features(dataset))


def _check_columns(source: HubSource, config: str | None, split: str, have: list[str], need: Iterable[str]) -> None:
    for column in need:
        if column not in have:
            raise XLTError(
                f"{_where(source, config)} split {split!r} has no column {column!r} (it has: "
                f"{', '.join(have) or 'nothing'}); fix the source's columns or the data"
            )


def _class_names(feature: Any) -> list[str] | None:
    """The names of a ClassLabel, or of the ClassLabel inside a sequence feature."""
    names = getattr(feature, "names", None)
    if names:
        return list(names)
    inner = getattr(feature, "feature", None)
    return _class_names(inner) if inner is not None else None


# ---- conversion -------------------------------------------------------------------------------------------------


def _ner_rows(
    source: HubSource, rows: Iterable[Mapping], features: Mapping, tally: dict[str, int]
) -> Iterator[dict | None]:
    tokens_col, tags_col = source.columns["tokens"], source.columns["ner_tags"]
    names = _class_names(features.get(tags_col)) or list(source.label_names or ())
    for row in rows:
        tags = list(row[tags_col])
        if any(isinstance(tag, int) for tag in tags):
            if not names or any(not 0 <= tag < len(names) for tag in tags):
                raise XLTError(
                    f"{source.path}: tag ids {sorted(set(tags))} have no names (the features name none); "
                    "set label_names on the source"
                )
            tags = [names[tag] for tag in tags]
        yield {"tokens": [str(t) for t in row[tokens_col]], "ner_tags": [str(t) for t in tags]}


def _nli_rows(
    source: HubSource, rows: Iterable[Mapping], features: Mapping, tally: dict[str, int]
) -> Iterator[dict | None]:
    cols = source.columns
    names = _class_names(features.get(cols["label"])) or list(source.label_names or ())
    for row in rows:
        label = row[cols["label"]]
        if label is None or label == -1 or label == "":
            yield None  # unlabelled (XNLI's -1, a test set without gold labels)
            continue
        if isinstance(label, int):
            if not 0 <= label < len(names):
                raise XLTError(f"{source.path}: label id {label} has no name (known: {names}); set label_names")
            label = names[label]
        label = source.label_map.get(str(label), str(label))
        if label not in NLI_LABELS:
            raise XLTError(
                f"{source.path}: label {label!r} is not one of {', '.join(NLI_LABELS)}; "
                "map it in the source's label_map"
            )
        yield {"premise": row[cols["premise"]], "hypothesis": row[cols["hypothesis"]], "label": label}


def _answers(value: Any) -> dict[str, list]:
    """SQuAD's answers from a struct of lists (parquet) or a list of {text, answer_start} (nested JSON)."""
    if isinstance(value, Mapping):
        texts, starts = list(value.get("text") or []), list(value.get("answer_start") or [])
    else:
        texts = [a["text"] for a in value or []]
        starts = [a["answer_start"] for a in value or []]
    return {"text": [str(t) for t in texts], "answer_start": [int(s) for s in starts]}


def _flatten(rows: Iterable[Mapping]) -> Iterator[dict]:
    """SQuAD's nested JSON (articles of paragraphs of questions) as one row per question."""
    for article in rows:
        for paragraph in article.get("paragraphs") or []:
            for qa in paragraph.get("qas") or []:
                yield {
                    "id": qa.get("id"),
                    "question": qa.get("question"),
                    "context": paragraph.get("context"),
                    "answers": qa.get("answers") or [],
                }


def repair_answers(context: str, answers: Mapping[str, list]) -> tuple[dict[str, list], int]:
    """``answers`` with every ``answer_start`` pointing at its text in ``context``, and how many answers were
    changed: an answer found at its start is kept, one found elsewhere moves to the occurrence nearest its start
    (the earlier on a tie), one not in the context at all (or empty) is dropped."""
    texts: list[str] = []
    starts: list[int] = []
    changed = 0
    given = list(answers["answer_start"])
    for index, text in enumerate(answers["text"]):
        start = given[index] if index < len(given) else -1
        if text and start >= 0 and context[start : start + len(text)] == text:
            texts.append(text)
            starts.append(start)
            continue
        changed += 1
        found = _occurrences(context, text) if text else []
        if found:
            texts.append(text)
            starts.append(min(found, key=lambda at: (abs(at - start), at)))
    return {"text": texts, "answer_start": starts}, changed


def _occurrences(context: str, text: str) -> list[int]:
    found, at = [], context.find(text)
    while at != -1:
        found.append(at)
        at = context.find(text, at + 1)
    return found


def _qa_rows(
    source: HubSource, rows: Iterable[Mapping], features: Mapping, tally: dict[str, int]
) -> Iterator[dict | None]:
    cols = source.columns
    for row in rows:
        answers = _answers(row[cols["answers"]])
        if not answers["text"]:
            yield None  # unanswerable (SQuAD 2.0) or unannotated
            continue
        context = row[cols["context"]]
        if not isinstance(context, str):
            yield None  # a row without a context has nothing to answer from
            continue
        answers, changed = repair_answers(context, answers)
        if not answers["text"]:
            yield None  # no answer occurs in the context: counted as a dropped row, not as repaired answers
            continue
        tally["repaired"] = tally.get("repaired", 0) + changed
        yield {
            "id": str(row[cols["id"]]),
            "question": row[cols["question"]],
            "context": context,
            "answers": answers,
        }


_CONVERT = {"ner": _ner_rows, "nli": _nli_rows, "qa": _qa_rows}


def _converted(
    source: HubSource, config: str | None, split: str, data_dir: Path | None, streaming: bool
) -> tuple[list[dict], int, int]:
    """The hub split in xlt's schema, how many rows were dropped (unlabelled, unanswerable, no answer in the
    context) and how many QA answers were repaired."""
    dataset = _load(source, config, split, data_dir, streaming)
    rows: Iterable[Mapping] = iter(dataset)
    first = next(rows, None)
    if first is None:
        return [], 0, 0
    rows = _chain(first, rows)
    have = _columns(dataset, first)
    if source.nested:
        _check_columns(source, config, split, have, ["paragraphs"])
        rows, have = _flatten(rows), ["id", "question", "context", "answers"]
    _check_columns(source, config, split, have, source.columns.values())
    kept, dropped = [], 0
    tally: dict[str, int] = {}
    for row in _CONVERT[source.schema](source, rows, _features(dataset), tally):
        if row is None:
            dropped += 1
        else:
            kept.append(row)
    return kept, dropped, tally.get("repaired", 0)


def _chain(first: Mapping, rest: Iterator[Mapping]) -> Iterator[Mapping]:
    yield first
    yield from rest


# ---- derived splits ---------------------------------------------------------------------------------------------


def _key(row: Mapping, column: str | None) -> str:
    if column is not None:
        return str(row[column])
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def split_rows(rows: list[dict], fractions: Mapping[str, float], seed: int, key: str | None) -> dict[str, list]:
    """Cut ``rows`` by group: groups ordered by SHA-256 of ``f"{seed}:{key}"``, then taken by ``fractions`` in
    order (``round(fraction * groups)``, at least one); what no fraction takes is returned under ``""`` (the
    remainder a directly mapped split keeps)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(_key(row, key), []).append(row)
    order = sorted(groups, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    out: dict[str, list] = {name: [] for name in (*fractions, "")}
    taken, total = 0, len(order)
    for name, fraction in fractions.items():
        # at least one group for a split asked for, so a small source still yields every split
        count = max(1, round(fraction * total)) if fraction > 0 else 0
        for k in order[taken : taken + count]:
            out[name].extend(groups[k])
        taken = min(total, taken + count)
    for k in order[taken:]:
        out[""].extend(groups[k])
    return out


# ---- materialising ----------------------------------------------------------------------------------------------


def cache_paths(source: HubSource, cache_dir: Path) -> dict[str, Path]:
    """Where ``materialize`` writes each split of ``source``."""
    directory = Path(cache_dir) / source.task / source.language
    return {split: directory / f"{split}.jsonl" for split in SPLITS}


def _manifest_path(source: HubSource, cache_dir: Path) -> Path:
    return Path(cache_dir) / source.task / source.language / MANIFEST


def cached(source: HubSource, cache_dir: Path) -> bool:
    """Whether ``cache_dir`` holds a complete materialisation of exactly this source."""
    manifest = _manifest_path(source, cache_dir)
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or recorded.get("format") != FORMAT:
        return False
    if recorded.get("source") != json.loads(json.dumps(source.record())):
        return False
    return all(path.is_file() for path in cache_paths(source, cache_dir).values())


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="\n") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    atomic_write(path, write)


def materialize(
    source: HubSource, cache_dir: Path, *, data_dir: Path | None = None, streaming: bool = False
) -> dict[str, Path]:
    """Write ``source``'s train/dev/test as JSONL in its schema under ``cache_dir/{task}/{language}/``; return
    split -> path. Reuses a complete earlier write of the same source without loading anything.

    ``streaming`` reads the hub splits as streams (rows are never cached as Arrow files by ``datasets``): worth it
    for the big ones (XNLI train, 392k rows per language; SQuAD train, 87.6k; MLQA translate-train, ~80k), which
    ``streams(source)`` names.
    """
    paths = cache_paths(source, cache_dir)
    if cached(source, cache_dir):
        return paths
    loaded: dict[tuple[str | None, str], tuple[list[dict], int, int]] = {}
    for config, split in source.reads():
        loaded[(config, split)] = _converted(source, config, split, data_dir, streaming)
    out: dict[str, list[dict]] = {}
    dropped: dict[str, int] = {}
    repaired: dict[str, int] = {}
    derived: dict[str, list] = {}
    if source.derive:
        rows, _, _ = loaded[(source.name, source.derive.source)]
        derived = split_rows(rows, source.derive.fractions, source.derive.seed, source.derive.key)
    for split in SPLITS:
        hub = source.splits.get(split)
        if hub is None:
            out[split] = derived[split]
            continue
        config = source.config_for(split)
        rows, dropped[split], repaired[split] = loaded[(config, hub)]
        if source.derive and (config, hub) == (source.name, source.derive.source):
            rows = derived[""]  # what the derived splits left of the hub split this one also reads
        out[split] = rows
    if source.derive:
        before = f"{source.derive.source} (before deriving)"
        _, dropped[before], repaired[before] = loaded[(source.name, source.derive.source)]
    manifest = _manifest_path(source, cache_dir)
    if manifest.parent.is_dir() and not owns(manifest.parent) and any(manifest.parent.iterdir()):
        raise XLTError(
            f"{manifest.parent} holds files xlt did not write; choose another cache_dir (xlt writes the fetched "
            "data there and would replace them)"
        )
    make_dir(manifest.parent)
    manifest.unlink(missing_ok=True)  # the old manifest must not vouch for files being replaced
    for split, rows in out.items():
        _write_jsonl(paths[split], rows)
    record = {
        "format": FORMAT,
        "source": source.record(),
        "revision": source.revision or "main",
        "data_dir": str(data_dir) if data_dir is not None else None,
        "rows": {split: len(rows) for split, rows in out.items()},
        "dropped": dropped,
        "repaired": repaired,
        "seed": source.derive.seed if source.derive else None,
    }
    atomic_write_text(manifest, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return paths


def downloads(task: str, languages: list[str], *, cache_dir: Path | None = None) -> list[str]:
    """The hub repositories (``path (config)``) a run of ``task`` over ``languages`` would download, leaving out
    what ``cache_dir`` (default ``default_cache_dir()``) already holds. Raises for a pair with no public source."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    wanted: list[str] = []
    for language in languages:
        source = resolve(task, language)
        if not cached(source, cache):
            wanted.extend(label for label in source.labels() if label not in wanted)
    return wanted
