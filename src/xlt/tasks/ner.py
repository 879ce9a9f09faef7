"""Named entities: text to text, the model generates the sentence's entities as ``TYPE: text`` joined by
``$$`` from ``tag: {tokens}`` (scored by the paper's span-level F1, type and text); on encoders, BIO tags per
word from a token head with labels on first sub-tokens (scored by entity-level F1, seqeval's strict IOB2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from xlt.errors import XLTError
from xlt.reps.heads import HeadConfig
from xlt.tasks.base import OutputType
from xlt.tasks.data import ClassificationData, Example, TaskDataError
from xlt.tasks.file_task import FileTask
from xlt.tasks.head_inputs import HeadBatch, encode_words, tags_from_logits
from xlt.tasks.schemas import WIKIANN_TAGS
from xlt.tasks.tagging_metrics import bio_spans, entity_scores, parse_spans, span_scores, spans_from_bio


class NERTask(FileTask):
    """Named-entity recognition over words with IOB2 tags; ``f1`` selects checkpoints. ``tag_names``: the
    names of integer tags in the files (WikiANN's order by default)."""

    output_type: ClassVar[OutputType] = "tagging"
    closed_labels: ClassVar[bool] = False
    schema = "ner"
    registry_task = "ner"
    template = "tag: {tokens}"
    placeholders = ("tokens",)
    metric = "f1"

    def __init__(
        self,
        name: str,
        train: str | Path | None = None,
        dev: str | Path | None = None,
        test: str | Path | None = None,
        *,
        tag_names: list[str] | None = None,
        **common: Any,
    ) -> None:
        """``common``: ``FileTask``'s options (hub, cache_dir, mirror, template, init_text, fields)."""
        super().__init__(name, train, dev, test, **common)
        self.tag_names = list(tag_names) if tag_names is not None else list(WIKIANN_TAGS)

    def read_options(self) -> dict[str, Any]:
        return {"tag_names": self.tag_names}

    def fields(self, example: Example) -> dict[str, str]:
        return {"tokens": " ".join(example.tokens)}

    def labels(self, source: str) -> list[str]:
        """The tags of the source's training data, "O" first, then by type (B- before I-)."""
        found = {t for e in self.examples(source, "train") for t in e.tags} | {"O"}
        return sorted(found, key=lambda tag: (tag != "O", tag[2:], tag[:1]))

    def training_data(self, source: str) -> ClassificationData:
        labels = self.labels(source)
        dev = self.examples(source, "dev")
        unknown = sorted({t for e in dev for t in e.tags} - set(labels))
        warnings = []
        if unknown:
            warnings.append(
                f"dev file {self.path(source, 'dev')}: tags {unknown[:5]} occur in no training example; "
                "they are never predicted"
            )
        if len(labels) < 2:
            raise TaskDataError(
                f"task '{self.name}': the training file {self.path(source, 'train')} has no entity (tag some words)"
            )
        return ClassificationData(labels, self.examples(source, "train"), dev, warnings)

    def reference(self, example: Example) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return example.tokens, example.tags

    def head(self, source: str) -> HeadConfig:
        labels = self.labels(source)
        return HeadConfig("token", num_labels=len(labels), labels=labels)

    def encode(
        self, tokenizer: Any, rows: Sequence[Example], labels: Sequence[str], max_length: int, *, train: bool
    ) -> HeadBatch:
        tags = [list(e.tags) for e in rows] if train else None
        return encode_words(tokenizer, [list(e.tokens) for e in rows], tags, labels, max_length)

    def decode(
        self, logits: torch.Tensor, batch: HeadBatch, rows: Sequence[Example], labels: Sequence[str]
    ) -> list[Any]:
        return [("tags", tags) for tags in tags_from_logits(logits, batch, [len(e.tokens) for e in rows], labels)]

    def parse(self, text: str, labels: Sequence[str]) -> Any:
        return ("spans", parse_spans(text))

    def score(
        self, predictions: Sequence[Any], references: Sequence[Any], language: str | None = None
    ) -> dict[str, float]:
        kinds = {kind for kind, _ in predictions}
        if len(kinds) > 1:
            raise XLTError("NER predictions mix head tags and generated spans; score each kind on its own")
        if kinds == {"tags"}:
            return entity_scores([list(p) for _, p in predictions], [list(tags) for _, tags in references])
        gold = [spans_from_bio(tokens, tags) for tokens, tags in references]
        return span_scores([p for _, p in predictions], gold)

    def example_score(self, prediction: Any, reference: Any, language: str | None = None) -> float:
        kind, predicted = prediction
        _, tags = reference
        found = bio_spans(predicted) if kind == "tags" else predicted
        if not found and not bio_spans(tags):
            return 1.0  # no entity, none predicted: right (a corpus F1 of one such sentence would say 0)
        return self.score([prediction], [reference], language)["f1"]

    def options_record(self) -> dict[str, Any]:
        return {"tag_names": self.tag_names}
