"""What a task is, as one contract that training, evaluation and the matrix all read: its examples per
language and split, how a family sees an example (a head and its targets, or a text-to-text input and target),
how an output is decoded and parsed, the score (and the headline metric that selects checkpoints), its head
and the init text of its task prompt.

The contract follows the shape of lm-evaluation-harness's tasks (``output_type``, ``doc_to_text``,
``doc_to_target``, metrics): a task type overrides what differs for its output type and inherits the rest.
"""

from __future__ import annotations

import inspect
import string
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from xlt.errors import XLTError
from xlt.reps.heads import HeadConfig
from xlt.tasks.data import ClassificationData, Example
from xlt.tasks.head_inputs import HeadBatch, encode_texts

Split = Literal["train", "dev", "test"]
# What a task's answer is: a label of the text (classification), a label of a pair of texts (NLI), a label per
# token (NER: BIO tags for heads, "TYPE: text" spans as text), a span of a context (extractive QA: a span head
# for encoders, the answer as text for text-to-text) or free text (generation).
OutputType = Literal["classification", "pair_classification", "tagging", "span", "generation"]

# The paper's init texts for task prompts ({language}: the source language's English name).
PAPER_INIT_TEXTS: dict[str, str] = {
    "qa": "Answer the question in {language} language:",
    "ner": "Identify ner tags (ORG, PER, LOC) in the text in {language}:",
    "nli": ('Select "Yes", "No" or "Maybe" based on the implication of the premise on the hypothesis in {language}:'),
    "checkworthiness": "Determine whether a given claim in {language} is checkworthy:",
}


class Task(ABC):
    """A task of the transfer matrix. Subclasses say where each (language, split) lives, what its labels are
    and how it is scored; the defaults below serve a label per example."""

    name: str
    output_type: ClassVar[OutputType] = "classification"
    metric: str = "accuracy"  # the headline metric: checkpoint selection on dev, the matrix's tables
    # Whether predictions are labels of a fixed set: gold labels the representation never saw are then reported.
    closed_labels: ClassVar[bool] = True
    # The families the task runs on: an encoder through a head, the others text to text.
    families: ClassVar[tuple[str, ...]] = ("encoder", "encoder_decoder", "decoder")
    template: str = "{text}"  # text-to-text input; "{text}" is the example's text
    placeholders: ClassVar[tuple[str, ...]] = ("text",)  # what a template may name (see ``fields``)
    init_text: str | None = None  # a task prompt's init text as declared ({language}: the source language)

    # ---- data ------------------------------------------------------------------------------------------
    @abstractmethod
    def path(self, language: str, split: Split) -> Path:
        """The file holding this language's split (it may not exist: that cell is then reported missing)."""

    @abstractmethod
    def examples(self, language: str, split: Split) -> list[Example]:
        """The examples of one language's split; ``TaskDataError`` when they are missing or malformed."""

    @abstractmethod
    def labels(self, source: str) -> list[str]:
        """The label set, as the task representation trained in ``source`` knows it."""

    def training_data(self, source: str) -> ClassificationData:
        """The source language's train and dev examples with the labels, checked against each other (warnings
        for what does not stop training). By default: the train and dev examples under ``labels(source)``."""
        train, dev = self.examples(source, "train"), self.examples(source, "dev")
        if not self.closed_labels:  # answers are free text (QA, generation): no label set to check them against
            return ClassificationData(self.labels(source), train, dev)
        files = (self.path(source, "train"), self.path(source, "dev"))
        return ClassificationData.from_examples(self.labels(source), train, dev, files)

    def record(self, source: str) -> dict[str, Any]:
        """What identifies this task's training data and format in a training run's record (``run.json``): its
        files (compared by content), declared labels, template and the fields a file task reads."""
        declared = getattr(self, "declared", None)
        return {
            "train_file": self.path(source, "train"),
            "dev_file": self.path(source, "dev"),
            "labels": None if declared is None else list(declared),
            "template": self.template,
            "text_field": getattr(self, "text_field", "text"),
            "label_field": getattr(self, "label_field", "label"),
            "pooling": getattr(self, "pooling", "mean"),
        }

    # ---- how a family sees an example ------------------------------------------------------------------
    def fields(self, example: Example) -> dict[str, str]:
        """The template's placeholders filled from an example."""
        return {"text": example.text}

    def doc_to_text(self, example: Example) -> str:
        """The model's input text (every family; a text-to-text model answers after it)."""
        return self.template.format(**self.fields(example))

    def doc_to_target(self, example: Example) -> str:
        """The answer a text-to-text model is taught to generate."""
        return self.verbalize(example.label)

    def verbalize(self, label: str) -> str:
        """A label as a text-to-text model writes it (the label itself, unless the task says otherwise)."""
        return label

    def reference(self, example: Example) -> Any:
        """What a prediction is scored against (a label; a task's own shape elsewhere: answers, tags, spans)."""
        return example.label

    def generation_targets(self, source: str, labels: Sequence[str]) -> list[str]:
        """The texts a text-to-text model may have to generate: ``max_new_tokens`` is the longest of them (plus
        the end of sequence), never a library default. A closed label set gives its verbalised labels, free
        answers the source's training targets."""
        if not self.closed_labels:
            return [self.doc_to_target(e) for e in self.examples(source, "train")]
        return [self.verbalize(label) for label in labels]

    def check_family(self, family: str) -> None:
        """Refuse a model family the task cannot run on, before anything trains."""
        if family not in self.families:
            raise XLTError(
                f"task '{self.name}' ({type(self).__name__}) does not run on {family} models (it runs on: "
                f"{', '.join(self.families)}); choose a model of one of those families"
            )

    @abstractmethod
    def head(self, source: str) -> HeadConfig:
        """The head an encoder's task representation owns."""

    def head_targets(self, rows: Sequence[Example], labels: Sequence[str]) -> torch.Tensor:
        """The head's training targets for a batch (a label index per example)."""
        return torch.tensor([labels.index(e.label) for e in rows])

    def from_head(self, logits: torch.Tensor, labels: Sequence[str]) -> list[str | None]:
        """A batch of head outputs as predictions."""
        return [labels[i] for i in logits.argmax(-1).tolist()]

    def encode(
        self, tokenizer: Any, rows: Sequence[Example], labels: Sequence[str], max_length: int, *, train: bool
    ) -> HeadBatch:
        """A batch of examples as a head's input (and its targets when ``train``). By default one row per
        example: the template's text, or the text and its pair (NLI) as the tokenizer joins a pair."""
        pairs = [e.pair for e in rows] if any(e.pair is not None for e in rows) else None
        texts = [e.text for e in rows] if pairs is not None else [self.doc_to_text(e) for e in rows]
        batch = encode_texts(tokenizer, texts, pairs, max_length)
        if train:
            batch.labels = self.head_targets(rows, labels)
        return batch

    def decode(
        self, logits: torch.Tensor, batch: HeadBatch, rows: Sequence[Example], labels: Sequence[str]
    ) -> list[Any]:
        """A batch of head outputs (one row per input row of ``batch``) as one prediction per example."""
        return self.from_head(logits, labels)

    # ---- decoding and scoring --------------------------------------------------------------------------
    @abstractmethod
    def parse(self, text: str, labels: Sequence[str]) -> Any:
        """A generated answer as a prediction (a label, or None when it is none of them: counted wrong)."""

    @abstractmethod
    def score(
        self, predictions: Sequence[Any], references: Sequence[Any], language: str | None = None
    ) -> dict[str, float]:
        """The task's metrics, ``metric`` among them (``language``: the target, for language-aware scores)."""

    def scores_in(
        self, predictions: Sequence[Any], references: Sequence[Any], language: str | None
    ) -> dict[str, float]:
        """``score`` with the target language, where the task's ``score`` takes one (a task type written before
        scores took a language is called as it was written)."""
        if "language" in inspect.signature(self.score).parameters:
            return self.score(predictions, references, language)
        return self.score(predictions, references)

    def example_score(self, prediction: Any, reference: Any, language: str | None = None) -> float:
        """One example's score in [0, 1] (the report's worst examples are the lowest)."""
        return float(prediction == reference)

    def prompt_init_text(self) -> str:
        """A task prompt's init text: the declared one, the paper's for its tasks, else a generic one."""
        if self.init_text:
            return self.init_text
        return PAPER_INIT_TEXTS.get(self.name, f"Classify the {self.name} of the text in {{language}}:")


def check_template(template: str, error: type[XLTError] = XLTError, placeholders: Sequence[str] = ("text",)) -> str:
    """``template`` if its placeholders are plain names among ``placeholders`` (``{text}`` by default; literal
    braces doubled, as ``str.format`` wants), each of them present; otherwise one error. Anything else would
    fail mid-training (``{txt}``), reach into the text object (``{text.__class__}``, ``{text[0]}``) or drop
    part of the input."""
    wanted = ", ".join("{" + p + "}" for p in placeholders)
    if not isinstance(template, str):
        raise error(f"template must be a string with the placeholder(s) {wanted}, got {template!r}")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:  # a lone brace
        raise error(f"template {template!r} is malformed ({exc}); write a literal brace as {{{{ or }}}}") from None
    others = sorted({"{" + name + "}" for name, spec, conv in fields if name not in placeholders or spec or conv})
    if others:
        verb = "is" if len(placeholders) == 1 else "are"
        raise error(f"template {template!r} has the placeholder(s) {', '.join(others)}; only {wanted} {verb} filled")
    missing = [p for p in placeholders if p not in {name for name, _, _ in fields}]
    if missing:
        what = ", ".join("{" + p + "}" for p in missing)
        raise error(f"template {template!r} has no {what} placeholder; add it")
    return template
