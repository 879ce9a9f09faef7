"""Classification metrics, computed here rather than fetched: ``evaluate.load`` downloads code at run time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from xlt.errors import XLTError


def classification_metrics(predictions: Sequence[str | None], references: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1. ``None`` (an answer that matches no label) is wrong and earns no precision.

    Macro-F1 averages over the labels seen in the references or predicted (as scikit-learn's default), so a
    label absent from a small test set and never predicted does not count as a zero.
    """
    if len(predictions) != len(references):
        raise XLTError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise XLTError("no examples to score")
    correct = sum(p == r for p, r in zip(predictions, references, strict=True))
    labels = sorted(set(references) | {p for p in predictions if p is not None})
    f1s = []
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(predictions, references, strict=True))
        predicted = sum(p == label for p in predictions)
        actual = sum(r == label for r in references)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {"accuracy": correct / len(references), "macro_f1": sum(f1s) / len(f1s)}


@dataclass(frozen=True)
class UnseenLabels:
    """Gold labels a task representation was never trained on: it cannot predict them, so every example that
    carries one is scored wrong whatever the representation does."""

    count: int  # test examples whose gold label is unseen
    labels: list[str]  # the unseen labels, sorted

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "labels": list(self.labels)}

    def message(self, where: str) -> str:
        """One line for a log or a report, e.g. ``where`` = the test file or the cell."""
        return (
            f"{where}: {self.count} example(s) have label(s) {self.labels[:5]} the task representation was not "
            "trained on; they are scored wrong"
        )


def unseen_labels(trained: Iterable[str], gold: Iterable[str]) -> UnseenLabels:
    """The gold (test) labels outside ``trained`` (the labels the representation was trained with: its head's
    labels, or the task's labels in the source language), as a count of examples and a sorted label list."""
    known = {str(label) for label in trained}
    missing = [label for label in gold if label not in known]
    return UnseenLabels(len(missing), sorted(set(missing)))


def check_scorable(predictions: Sequence[object], references: Sequence[object]) -> None:
    """Refuse what no score can be computed on: unequal lengths, or nothing at all."""
    if len(predictions) != len(references):
        raise XLTError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise XLTError("no examples to score")


def positive_f1(predictions: Sequence[str | None], references: Sequence[str], positive: str) -> dict[str, float]:
    """Accuracy and macro-F1 (as ``classification_metrics``) with precision, recall and F1 of ``positive``.

    ``None`` (an answer that matches no label) is a negative prediction, and wrong. A zero denominator gives 0
    (as scikit-learn's default), e.g. precision when ``positive`` is never predicted.
    """
    overall = classification_metrics(predictions, references)
    tp = sum(p == positive and r == positive for p, r in zip(predictions, references, strict=True))
    predicted = sum(p == positive for p in predictions)
    actual = sum(r == positive for r in references)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": overall["accuracy"],
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "macro_f1": overall["macro_f1"],
    }
