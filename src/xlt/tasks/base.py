"""What a task is: its data per language and split, how a family sees an example (a text-to-text template and
target, or a head and labels), how an answer is parsed, and how predictions are scored."""

from __future__ import annotations

import string
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from xlt.errors import XLTError
from xlt.reps.heads import HeadConfig
from xlt.tasks.classification import Example

Split = Literal["train", "dev", "test"]


class Task(ABC):
    """A task of the transfer matrix. Subclasses say where each (language, split) lives and how to score."""

    name: str
    template: str = "{text}"  # text-to-text input; "{text}" is the example's text
    init_text: str | None = None  # a task prompt's init text ({language}: the source language's name)

    @abstractmethod
    def path(self, language: str, split: Split) -> Path:
        """The file holding this language's split (it may not exist: that cell is then reported missing)."""

    @abstractmethod
    def examples(self, language: str, split: Split) -> list[Example]:
        """The examples of one language's split; ``TaskDataError`` when they are missing or malformed."""

    @abstractmethod
    def labels(self, source: str) -> list[str]:
        """The label set, as the task representation trained in ``source`` knows it."""

    @abstractmethod
    def head(self, source: str) -> HeadConfig:
        """The head an encoder's task representation owns."""

    @abstractmethod
    def parse(self, text: str, labels: Sequence[str]) -> str | None:
        """A generated answer as a label, or None when it is none of them (counted wrong)."""

    @abstractmethod
    def score(self, predictions: Sequence[str | None], references: Sequence[str]) -> dict[str, float]:
        """The task's metrics (the first one is the headline metric)."""


def check_template(template: str, error: type[XLTError] = XLTError) -> str:
    """``template`` if its only placeholder is a plain ``{text}`` (literal braces doubled, as ``str.format``
    wants); otherwise one error. Anything else would fail mid-training (``{txt}``) or reach into the text
    object (``{text.__class__}``, ``{text[0]}``)."""
    if not isinstance(template, str):
        raise error(f"template must be a string with a {{text}} placeholder, got {template!r}")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:  # a lone brace
        raise error(f"template {template!r} is malformed ({exc}); write a literal brace as {{{{ or }}}}") from None
    others = sorted({"{" + name + "}" for name, spec, conv in fields if name != "text" or spec or conv})
    if others:
        raise error(f"template {template!r} has the placeholder(s) {', '.join(others)}; only {{text}} is filled")
    if not fields:
        raise error(f"template {template!r} has no {{text}} placeholder; add one")
    return template
