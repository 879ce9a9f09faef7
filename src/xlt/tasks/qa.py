"""Extractive question answering: text to text, the model generates the first gold answer from
``question: {question} context: {context}``; on encoders, a span head over sliding windows of the context,
the best-scoring answer across all windows mapped back to the context's own characters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from xlt.reps.heads import HeadConfig
from xlt.tasks.base import OutputType
from xlt.tasks.data import Example, TaskDataError
from xlt.tasks.file_task import FileTask
from xlt.tasks.head_inputs import HeadBatch, best_answers, encode_windows
from xlt.tasks.qa_metrics import qa_example_score, qa_scores


class QATask(FileTask):
    """SQuAD-style extractive QA scored by exact match and F1 (``f1`` selects checkpoints), normalised as the
    official SQuAD script for English and as MLQA's for other targets (articles and punctuation of the language,
    whitespace-free scripts by character).

    ``stride``: tokens shared by neighbouring windows of a long context (encoders); ``max_answer_tokens``:
    the longest span the head may answer."""

    output_type: ClassVar[OutputType] = "span"
    closed_labels: ClassVar[bool] = False
    schema = "qa"
    registry_task = "qa"
    template = "question: {question} context: {context}"
    placeholders = ("question", "context")
    metric = "f1"

    def __init__(
        self,
        name: str,
        train: str | Path | None = None,
        dev: str | Path | None = None,
        test: str | Path | None = None,
        *,
        stride: int = 32,
        max_answer_tokens: int = 30,
        **common: Any,
    ) -> None:
        """``common``: ``FileTask``'s options (hub, cache_dir, mirror, template, init_text, fields)."""
        super().__init__(name, train, dev, test, **common)
        if not isinstance(stride, int) or stride < 0:
            raise TaskDataError(f"task '{name}': stride must be an integer >= 0, got {stride!r}")
        if not isinstance(max_answer_tokens, int) or max_answer_tokens < 1:
            raise TaskDataError(f"task '{name}': max_answer_tokens must be an integer >= 1, got {max_answer_tokens!r}")
        self.stride, self.max_answer_tokens = stride, max_answer_tokens

    def fields(self, example: Example) -> dict[str, str]:
        return {"question": example.pair or "", "context": example.text}

    def labels(self, source: str) -> list[str]:
        return []  # answers are spans of their context, not labels of a set

    def reference(self, example: Example) -> tuple[str, ...]:
        return example.answers or (example.label,)

    # ---- encoders -----------------------------------------------------------------------------------
    def head(self, source: str) -> HeadConfig:
        return HeadConfig("span")

    def encode(
        self, tokenizer: Any, rows: Sequence[Example], labels: Sequence[str], max_length: int, *, train: bool
    ) -> HeadBatch:
        answers = [(e.starts[0] if e.starts and e.starts[0] >= 0 else e.text.find(e.label), e.label) for e in rows]
        return encode_windows(
            tokenizer,
            [e.pair or "" for e in rows],
            [e.text for e in rows],
            max_length,
            self.stride,
            answers=[(s, a) if s >= 0 else None for s, a in answers] if train else None,
        )

    def decode(
        self, logits: torch.Tensor, batch: HeadBatch, rows: Sequence[Example], labels: Sequence[str]
    ) -> list[str]:
        return best_answers(logits, batch, [e.text for e in rows], self.max_answer_tokens)

    # ---- scoring ------------------------------------------------------------------------------------
    def parse(self, text: str, labels: Sequence[str]) -> str:
        return text.strip()

    def score(
        self, predictions: Sequence[Any], references: Sequence[Any], language: str | None = None
    ) -> dict[str, float]:
        return qa_scores(predictions, references, language)

    def example_score(self, prediction: Any, reference: Any, language: str | None = None) -> float:
        return qa_example_score(prediction, reference, language)

    def options_record(self) -> dict[str, Any]:
        return {"stride": self.stride, "max_answer_tokens": self.max_answer_tokens}
