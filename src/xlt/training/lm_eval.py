"""Held-out language-modelling loss of every language's text under every language representation.

What a language representation is for: it should lower its own language's held-out loss against the model
alone (the shared LM head alone, on encoders), and lower it more than it lowers another language's. The table
measures both on held-out segments, each language's text masked once (the same masks under every
representation, so the differences are paired), and on segments the representations' training never selected a
checkpoint on: those that follow the validation segments training used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from xlt.errors import XLTError
from xlt.model import XLTModel
from xlt.plan import Plan
from xlt.training.corpora import CorpusConfig
from xlt.training.data import SegmentSource, fixed_batches
from xlt.training.lm_head import MaskedLMHead
from xlt.training.lm_objective import ObjectiveConfig, evaluate_loss, lm_objective
from xlt.training.loop import TrainingModule

ALONE = ""  # the row of the model with no representation


@dataclass
class LossTable:
    """``losses[rep][text]``: mean masked-LM (or the family's LM) loss in nats per predicted token of
    ``text``'s held-out segments under ``rep`` (``ALONE``: no representation). ``segments[text]``: how many
    held-out segments the column rests on."""

    languages: list[str]
    reps: dict[str, str]  # rep name -> its language
    losses: dict[str, dict[str, float]] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)  # languages measured on the checkpoint-selection segments

    def margin(self, rep: str) -> float:
        """How much ``rep`` lowers its own language's loss against the model alone (positive: it helps)."""
        language = self.reps[rep]
        return self.losses[ALONE][language] - self.losses[rep][language]

    def own_best(self, rep: str) -> bool:
        """Whether ``rep`` lowers its own language's loss more than any other language's (relative to alone)."""
        own = self.reps[rep]
        gains = {text: self.losses[ALONE][text] - self.losses[rep][text] for text in self.languages}
        return all(gains[own] >= gain for text, gain in gains.items() if text != own)

    def to_dict(self) -> dict[str, Any]:
        return {
            "languages": self.languages,
            "reps": self.reps,
            "losses": self.losses,
            "segments": self.segments,
            "reused": self.reused,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LossTable:
        return cls(
            list(data["languages"]),
            dict(data["reps"]),
            dict(data["losses"]),
            dict(data["segments"]),
            list(data.get("reused", [])),
        )


def held_out(source: SegmentSource, skip: int, count: int) -> list[list[int]]:
    """The validation split's segments after the first ``skip`` (those a training run evaluated on), at most
    ``count``; the first ``count`` where the split holds no more than ``skip``."""
    segments = source.validation(skip + count)
    return segments[skip:] if len(segments) > skip else segments[:count]


def language_losses(
    model: XLTModel,
    corpora: dict[str, CorpusConfig],
    reps: dict[str, str],
    objective: ObjectiveConfig,
    head: MaskedLMHead | None = None,
    *,
    skip: int = 0,
    segments: int = 32,
    batch_size: int = 32,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> LossTable:
    """The loss of every language's held-out text (``corpora``) under the model alone and under each of
    ``reps`` (name -> its language; all in the model's bank)."""
    if not corpora:
        raise XLTError("no corpus to measure language-modelling loss on")
    table = LossTable(list(corpora), dict(reps))
    base = lm_objective(model, Plan(), objective, head)
    batches: dict[str, list[dict[str, torch.Tensor]]] = {}
    for language, corpus in corpora.items():
        source = SegmentSource(corpus, model.tokenizer, base.segment_length, base.separator, seed)
        rows = held_out(source, skip, segments)
        if rows:
            batches[language] = fixed_batches(rows, base.collate, batch_size, seed)
            table.segments[language] = len(rows)
            if len(source.validation(skip + 1)) <= skip:
                table.reused.append(language)
    if not batches:
        raise XLTError("the corpora hold no held-out text (raise their validation_fraction)")
    table.languages = [lang for lang in corpora if lang in batches]
    # A representation whose language has no held-out text has no margin to report.
    table.reps = {rep: lang for rep, lang in reps.items() if lang in batches}
    extra = {"lm_head": head} if head is not None else None
    with _evaluating(model):
        for rep in [ALONE, *table.reps]:
            objective_of = base if rep == ALONE else lm_objective(model, Plan((rep,)), objective, head)
            scorer = TrainingModule(model, objective_of.loss, extra)
            table.losses[rep] = {
                text: evaluate_loss(scorer, objective_of.loss, rows)["loss"] for text, rows in batches.items()
            }
            log(f"language modelling: {rep or 'model alone'}: " + _line(table.losses[rep]))
    return table


def _line(losses: dict[str, float]) -> str:
    return ", ".join(f"{text} {loss:.3f}" for text, loss in losses.items())


@contextmanager
def _evaluating(model: XLTModel) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def flagged(table: LossTable) -> list[str]:
    """One line per representation that makes its own language's held-out loss worse than the model alone."""
    return [
        f"{rep} raises {table.reps[rep]}'s held-out loss from {table.losses[ALONE][table.reps[rep]]:.3f} to "
        f"{table.losses[rep][table.reps[rep]]:.3f}"
        for rep in table.reps
        if table.reps[rep] in table.losses[ALONE] and table.margin(rep) < 0
    ]


__all__: Sequence[str] = ["ALONE", "LossTable", "flagged", "held_out", "language_losses"]
