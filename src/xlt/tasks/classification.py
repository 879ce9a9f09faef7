"""Text classification data: local JSONL / CSV / TSV files of (text, label) rows; labels from the data or
declared, and a row with an undeclared label is an error naming the file, line and label."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from xlt.errors import XLTError


class TaskDataError(XLTError):
    """Task data that is missing, empty, malformed or labelled outside the task's labels."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def load_examples(path: str | Path, text_field: str = "text", label_field: str = "label") -> list[Example]:
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"task file {path} does not exist")
    rows: list[tuple[int, dict[str, object]]] = []
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TaskDataError(f"{path}:{number} is not a JSON line ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise TaskDataError(f"{path}:{number} is not a JSON object")
                rows.append((number, record))
    elif path.suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ",")
            rows = [(number, dict(record)) for number, record in enumerate(reader, 2)]
    else:
        raise TaskDataError(f"task file {path} must be .jsonl, .csv or .tsv")
    examples = []
    for number, record in rows:
        text, label = record.get(text_field), record.get(label_field)
        if not isinstance(text, str) or label is None:
            raise TaskDataError(f"{path}:{number} lacks '{text_field}' or '{label_field}' (set text_field/label_field)")
        examples.append(Example(text, str(label)))
    if not examples:
        raise TaskDataError(f"task file {path} holds no examples")
    return examples


@dataclass
class ClassificationData:
    labels: list[str]
    train: list[Example]
    dev: list[Example]

    @classmethod
    def from_files(
        cls,
        train: str | Path,
        dev: str | Path,
        labels: list[str] | None = None,
        text_field: str = "text",
        label_field: str = "label",
    ) -> ClassificationData:
        train_rows = load_examples(train, text_field, label_field)
        dev_rows = load_examples(dev, text_field, label_field)
        if labels is None:
            labels = sorted({e.label for e in train_rows})
        labels = [str(label) for label in labels]  # rows' labels are read as text (a YAML 0/1 is an int)
        known = set(labels)
        for name, rows in (("train", train_rows), ("dev", dev_rows)):
            unknown = sorted({e.label for e in rows} - known)
            if unknown:
                raise TaskDataError(
                    f"{name} file {train if name == 'train' else dev} has labels {unknown[:5]} outside the task's "
                    f"labels {labels} (fix the data or declare them in labels=)"
                )
        if len(labels) < 2:
            raise TaskDataError(f"a classification task needs at least 2 labels, got {labels}")
        return cls(list(labels), train_rows, dev_rows)
