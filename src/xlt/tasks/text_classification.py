"""The generic text-classification task: (text, label) files per language, labels from the data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from xlt.reps.heads import HeadConfig
from xlt.tasks.base import Split, Task, check_template
from xlt.tasks.data import ClassificationData, Example, TaskDataError, label_list, load_examples
from xlt.tasks.files import check_pattern, fill_language
from xlt.tasks.metrics import classification_metrics


class TextClassificationTask(Task):
    """Text classification with labels from the data, scored by accuracy and macro-F1.

    ``train``, ``dev`` and ``test`` are file paths (.jsonl, .csv, .tsv) in which ``{language}`` stands for the
    language code, e.g. ``data/test/{language}.jsonl``; a path without it serves every language.
    """

    def __init__(
        self,
        name: str,
        train: str | Path,
        dev: str | Path,
        test: str | Path,
        *,
        labels: list[str] | None = None,
        template: str = "{text}",
        init_text: str | None = None,
        text_field: str = "text",
        label_field: str = "label",
        pooling: Literal["mean", "cls"] = "mean",
    ) -> None:
        self.name, self.template, self.init_text = name, _checked(name, template), init_text
        self.files = {"train": str(train), "dev": str(dev), "test": str(test)}
        self._check_files()
        self.declared = label_list(labels) if labels is not None else None
        self.text_field, self.label_field, self.pooling = text_field, label_field, pooling
        self._labels: dict[str, list[str]] = {}

    def _check_files(self) -> None:
        for split, pattern in self.files.items():
            try:
                check_pattern(pattern, TaskDataError)
            except TaskDataError as exc:
                raise TaskDataError(f"task '{self.name}' {split}: {exc}") from None

    def path(self, language: str, split: Split) -> Path:
        return fill_language(self.files[split], language, TaskDataError)

    def examples(self, language: str, split: Split) -> list[Example]:
        return load_examples(self.path(language, split), self.text_field, self.label_field)

    def labels(self, source: str) -> list[str]:
        if self.declared is not None:
            return list(self.declared)
        if source not in self._labels:
            self._labels[source] = sorted({e.label for e in self.examples(source, "train")})
        return list(self._labels[source])

    def training_data(self, source: str) -> ClassificationData:
        return ClassificationData.from_files(
            self.path(source, "train"), self.path(source, "dev"), self.declared, self.text_field, self.label_field
        )

    def head(self, source: str) -> HeadConfig:
        labels = self.labels(source)
        return HeadConfig("sequence", num_labels=len(labels), labels=labels, pooling=self.pooling)

    def parse(self, text: str, labels: Sequence[str]) -> str | None:
        folded = {label.strip().casefold(): label for label in labels}
        return folded.get(text.strip().casefold())

    def score(
        self, predictions: Sequence[str | None], references: Sequence[str], language: str | None = None
    ) -> dict[str, float]:
        return classification_metrics(predictions, references)


class FileClassificationTask(TextClassificationTask):
    """A text-classification task of exactly the files given (no ``{language}`` patterns): what a single
    training run on the command line names."""

    def _check_files(self) -> None:
        pass

    def path(self, language: str, split: Split) -> Path:
        return Path(self.files[split])


def _checked(name: str, template: str) -> str:
    try:
        return check_template(template, TaskDataError)
    except TaskDataError as exc:
        raise TaskDataError(f"task '{name}': {exc}") from None
