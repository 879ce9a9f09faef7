"""Natural language inference: does a premise imply a hypothesis? The paper's Yes / Maybe / No prompt for
models that generate; a sentence-pair head on encoders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from xlt.reps.heads import HeadConfig
from xlt.tasks.base import OutputType
from xlt.tasks.data import Example
from xlt.tasks.file_task import FileTask
from xlt.tasks.metrics import classification_metrics
from xlt.tasks.schemas import NLI_LABELS as SCHEMA_NLI_LABELS

NLI_LABELS = list(SCHEMA_NLI_LABELS)
ANSWERS = {"entailment": "Yes", "neutral": "Maybe", "contradiction": "No"}
PAPER_TEMPLATE = '{premise}\n\nQuestion: Does this imply that "{hypothesis}"? Yes, no, or maybe?'


class NLITask(FileTask):
    """Three-way NLI scored by accuracy (and macro-F1). A generated answer is read from its first word: yes,
    maybe or no; anything else counts as Maybe (neutral), as the paper scores it."""

    output_type: ClassVar[OutputType] = "pair_classification"
    schema = "nli"
    registry_task = "nli"
    template = PAPER_TEMPLATE
    placeholders = ("premise", "hypothesis")

    def fields(self, example: Example) -> dict[str, str]:
        return {"premise": example.text, "hypothesis": example.pair or ""}

    def labels(self, source: str) -> list[str]:
        return list(NLI_LABELS)

    def verbalize(self, label: str) -> str:
        return ANSWERS[label]

    def head(self, source: str) -> HeadConfig:
        return HeadConfig("sequence", num_labels=3, labels=list(NLI_LABELS), pooling="mean")

    def parse(self, text: str, labels: Sequence[str]) -> str:
        words = text.strip().split()
        first = words[0].strip(".,!?;:\"'").casefold() if words else ""
        return {"yes": "entailment", "no": "contradiction"}.get(first, "neutral")

    def score(
        self, predictions: Sequence[Any], references: Sequence[Any], language: str | None = None
    ) -> dict[str, float]:
        return classification_metrics(predictions, references)
