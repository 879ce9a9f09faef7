"""Check-worthiness of a claim: a binary task scored by the F1 of its positive class. The paper's data is
private; any binary claim dataset fits (local files, ``type: checkworthiness``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xlt.reps.heads import HeadConfig
from xlt.tasks.data import TaskDataError, label_list
from xlt.tasks.file_task import FileTask
from xlt.tasks.metrics import positive_f1

POSITIVE, NEGATIVE = "Checkworthy", "Not checkworthy"
# Label values read as the positive class when ``positive`` is not given.
_POSITIVE_VALUES = ("1", "yes", "true", "checkworthy")
_NEGATIVE_VALUES = ("0", "no", "false", "not checkworthy")


class CheckworthinessTask(FileTask):
    """``checkworthiness claim: {text}`` -> ``Checkworthy`` / ``Not checkworthy``. The files' labels are any two
    values; ``positive`` names the check-worthy one (default: 1, yes, true or Checkworthy)."""

    registry_task = None
    template = "checkworthiness claim: {text}"

    def __init__(
        self,
        name: str,
        train: str | Path | None = None,
        dev: str | Path | None = None,
        test: str | Path | None = None,
        *,
        positive: str | int | None = None,
        labels: list[str] | None = None,
        **common: Any,
    ) -> None:
        """``common``: ``FileTask``'s options (template, init_text, fields)."""
        super().__init__(name, train, dev, test, **common)
        self.positive = None if positive is None else str(positive)
        self.declared = label_list(labels) if labels is not None else None
        self.metric = "f1"

    def labels(self, source: str) -> list[str]:
        found = self.declared or sorted({e.label for e in self.examples(source, "train")})
        if len(found) != 2:
            raise TaskDataError(
                f"task '{self.name}': check-worthiness is binary, {self.path(source, 'train')} has labels {found[:5]} "
                "(give two label values)"
            )
        self.positive_label(found)
        return found

    def positive_label(self, labels: Sequence[str]) -> str:
        if self.positive is not None:
            if self.positive not in labels:
                raise TaskDataError(
                    f"task '{self.name}': positive label '{self.positive}' is not among the labels {list(labels)}"
                )
            return self.positive
        matches = [label for label in labels if label.strip().casefold() in _POSITIVE_VALUES]
        others = [label for label in labels if label.strip().casefold() in _NEGATIVE_VALUES]
        if len(matches) != 1 or len(others) != 1:
            raise TaskDataError(
                f"task '{self.name}': cannot tell the check-worthy label among {list(labels)} (set positive: LABEL)"
            )
        return matches[0]

    def is_positive(self, label: str | None) -> bool:
        if label is None:
            return False
        if self.positive is not None:
            return label == self.positive
        return label.strip().casefold() in _POSITIVE_VALUES

    def verbalize(self, label: str) -> str:
        return POSITIVE if self.is_positive(label) else NEGATIVE

    def head(self, source: str) -> HeadConfig:
        return HeadConfig("sequence", num_labels=2, labels=self.labels(source))

    def parse(self, text: str, labels: Sequence[str]) -> str | None:
        answer = " ".join(text.strip().strip(".!").split()).casefold()
        positive = self.positive_label(labels)
        negative = next(label for label in labels if label != positive)
        if answer.startswith(NEGATIVE.casefold()):
            return negative
        if answer.startswith(POSITIVE.casefold()):
            return positive
        return None  # neither answer: wrong whatever the gold label

    def score(
        self, predictions: Sequence[Any], references: Sequence[Any], language: str | None = None
    ) -> dict[str, float]:
        values = sorted({str(v) for v in [*references, *predictions] if v is not None and self.is_positive(str(v))})
        positive = values[0] if values else (self.positive or _POSITIVE_VALUES[0])
        return positive_f1(predictions, references, positive)

    def options_record(self) -> dict[str, Any]:
        return {"positive": self.positive, "labels": self.declared}
