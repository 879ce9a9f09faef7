"""Task data: the ``Example`` every task reads, and classification files of (text, label) rows (JSON lines, CSV,
TSV or parquet, read by ``xlt.tasks.rows``); labels from the data or declared. Every problem is one error naming
the file, the line and the fix: bytes that are not UTF-8, a line that is no JSON object, a missing or empty field,
a label of the wrong type, a row with the wrong number of columns, an empty file, a label outside the task's
labels. The other task types' files are read by ``xlt.tasks.schemas``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xlt.paths import short
from xlt.tasks.rows import TaskDataError, kind, read_rows, where

__all__ = ["ClassificationData", "Example", "TaskDataError", "label_list", "load_examples"]


@dataclass(frozen=True)
class Example:
    """One example of any task. Every task fills ``text`` and ``label``; the other fields are its own:

    - classification, check-worthiness: ``text`` and its ``label``;
    - NLI: ``text`` the premise, ``pair`` the hypothesis, ``label`` one of entailment / neutral / contradiction;
    - extractive QA: ``text`` the context, ``pair`` the question, ``answers`` every gold answer (``label`` is the
      first), ``starts`` their character offsets in ``text`` (-1 where unknown);
    - NER: ``tokens`` the words, ``tags`` their BIO tags (IOB2), ``text`` the words joined by spaces, ``label``
      the gold spans as ``TYPE: text`` joined by ``$$`` (the paper's target);
    - sequence to sequence: ``text`` the input, ``label`` the target.
    """

    text: str
    label: str
    pair: str | None = None
    tokens: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    starts: tuple[int, ...] = ()
    id: str = ""


def load_examples(path: str | Path, text_field: str = "text", label_field: str = "label") -> list[Example]:
    """The classification rows of ``path`` (see ``xlt.tasks.rows`` for the file types): a non-empty text and its
    label (a string, or an integer read as its digits)."""
    path = Path(path)
    rows = read_rows(path, (text_field, label_field), "set text_field/label_field")
    examples = [_example(where(path, number), record, text_field, label_field) for number, record in rows]
    if not examples:
        raise TaskDataError(f"task file {path} holds no examples (give it at least one row with a text and a label)")
    return examples


def _example(place: str, record: dict[str, object], text_field: str, label_field: str) -> Example:
    lacks = f"{place} lacks '{text_field}' or '{label_field}'"
    for name in (text_field, label_field):
        if record.get(name) is None:
            fields = ", ".join(str(k) for k in record) or "none"
            raise TaskDataError(f"{lacks}: no value for '{name}' (its fields: {fields}; set text_field/label_field)")
    text, label = record[text_field], record[label_field]
    if not isinstance(text, str):
        raise TaskDataError(f"{lacks}: '{text_field}' is {kind(text)}, not a string (write the text as a string)")
    if not text.strip():
        raise TaskDataError(f"{place}: '{text_field}' is empty (fill in the text or remove the row)")
    # A label is text; an integer (0/1 labels) is read as its digits. A float, bool, list or object is refused:
    # 1.0 would become "1.0" and never match a declared label 1, and True would become "True".
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        raise TaskDataError(f"{place}: '{label_field}' is {kind(label)}; write the label as a string or an integer")
    if not str(label).strip():
        raise TaskDataError(f"{place}: '{label_field}' is empty (give the row its label or remove it)")
    return Example(text, str(label))


@dataclass
class ClassificationData:
    labels: list[str]
    train: list[Example]
    dev: list[Example]
    warnings: list[str] = field(default_factory=list)  # problems that do not stop training, for its record

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
        return cls.from_examples(labels, train_rows, dev_rows, (train, dev))

    @classmethod
    def from_examples(
        cls,
        labels: list[str] | None,
        train_rows: list[Example],
        dev_rows: list[Example],
        files: tuple[str | Path, str | Path],
    ) -> ClassificationData:
        """Train and dev examples checked against the labels (declared, or those of the training examples);
        ``files`` name where they came from in the errors."""
        train, dev = files
        declared = labels is not None
        labels = label_list(labels) if labels is not None else sorted({e.label for e in train_rows})
        for name, path, rows in (("train", train, train_rows), ("dev", dev, dev_rows)):
            unknown = sorted({e.label for e in rows} - set(labels))
            if unknown:
                raise TaskDataError(
                    f"{name} file {path} has labels {unknown[:5]} outside the task's labels {labels} "
                    "(fix the data or declare them in labels=)"
                )
        if len(labels) < 2:
            where = "the declared labels" if declared else f"train file {train}"
            raise TaskDataError(
                f"a classification task needs at least 2 labels, {where} give {labels} "
                "(add examples of another label, or declare labels=)"
            )
        return cls(list(labels), train_rows, dev_rows, _untrained(labels, train, train_rows, dev, dev_rows))


def label_list(labels: list[str]) -> list[str]:
    """Declared labels as text (a YAML 0/1 is an int), each once; anything else is one error."""
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (list, tuple)):
        raise TaskDataError(f"labels must be a list of label names, got {short(labels)}")
    out = [str(label) for label in labels]  # rows' labels are read as text (a YAML 0/1 is an int)
    repeated = sorted({label for label in out if out.count(label) > 1})
    if repeated:
        raise TaskDataError(f"labels {out} name {repeated} more than once; list each label once")
    if any(not label.strip() for label in out):
        raise TaskDataError(f"labels {out} hold an empty label; remove it")
    return out


def _untrained(
    labels: list[str], train: str | Path, train_rows: list[Example], dev: str | Path, dev_rows: list[Example]
) -> list[str]:
    """Declared labels that no training example has: the representation never learns them, so the dev
    examples that carry them are always wrong (dev accuracy, hence the best checkpoint, is skewed)."""
    trained = {e.label for e in train_rows}
    warnings = []
    in_dev = sorted({e.label for e in dev_rows} - trained)
    if in_dev:
        count = sum(e.label in in_dev for e in dev_rows)
        warnings.append(
            f"dev file {dev}: {count} example(s) have label(s) {in_dev[:5]} that no example of train file {train} "
            "has; they are scored wrong (add training examples of them, or drop them from dev)"
        )
    never = sorted(set(labels) - trained - set(in_dev))
    if never:
        warnings.append(f"declared label(s) {never[:5]} occur in no example of train file {train}")
    return warnings
