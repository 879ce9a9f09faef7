"""Generic sequence to sequence: the user's template over an input, a target text, scored by exact match and
chrF; the task users bring their own generation tasks with."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from xlt.reps.heads import HeadConfig
from xlt.tasks.base import OutputType
from xlt.tasks.data import TaskDataError
from xlt.tasks.file_task import FileTask
from xlt.tasks.text_metrics import chrf, seq2seq_scores

METRICS = ("chrf", "exact_match")


class Seq2SeqTask(FileTask):
    """``input`` -> ``target`` files; ``metric`` (``chrf`` or ``exact_match``) selects checkpoints. Runs on
    models that generate (mT5/mt0, T5, decoder-only)."""

    output_type: ClassVar[OutputType] = "generation"
    closed_labels: ClassVar[bool] = False
    families: ClassVar[tuple[str, ...]] = ("encoder_decoder", "decoder")
    schema = "seq2seq"

    def __init__(
        self,
        name: str,
        train: str | Path | None = None,
        dev: str | Path | None = None,
        test: str | Path | None = None,
        *,
        metric: str = "chrf",
        **common: Any,
    ) -> None:
        """``common``: ``FileTask``'s options (template, init_text, fields)."""
        super().__init__(name, train, dev, test, **common)
        if metric not in METRICS:
            raise TaskDataError(f"task '{name}': metric must be one of {', '.join(METRICS)}, got {metric!r}")
        self.metric = metric

    def labels(self, source: str) -> list[str]:
        return []

    def head(self, source: str) -> HeadConfig:
        raise TaskDataError(f"task '{self.name}' generates text: it needs a model that generates, not a head")

    def parse(self, text: str, labels: Sequence[str]) -> str:
        return text.strip()

    def score(
        self, predictions: Sequence[Any], references: Sequence[Any], language: str | None = None
    ) -> dict[str, float]:
        return seq2seq_scores(predictions, references)

    def example_score(self, prediction: Any, reference: Any, language: str | None = None) -> float:
        return chrf([prediction or ""], [reference])

    def options_record(self) -> dict[str, Any]:
        return {"metric": self.metric}
