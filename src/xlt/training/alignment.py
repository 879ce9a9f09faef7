"""Aligning a target language's representation with parallel text: under its language representation, the frozen
model's pooled representation of a target-language string is pulled towards the representation the task
representation was trained on, that of the English (source) string under the source's language representation.

The objective is knowledge distillation of sentence representations across languages (Reimers and Gurevych,
"Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation", EMNLP 2020), applied to a
language representation rather than a whole model: mean squared error between the student's pooled final states
and the teacher's, computed once with the frozen model and the source's frozen representation. Matching the
teacher's vector itself (not only its direction, as a cosine loss does) keeps the geometry the task
representation relies on: a cosine loss alone lets every string drift towards one region. The language-modelling
objective stays by default (``lm_weight``), so the representation keeps modelling its language, and the run's
checkpoint is chosen on the sum of both losses on held-out text and held-out pairs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xlt.batching import pad
from xlt.errors import XLTError
from xlt.model import XLTModel
from xlt.plan import Plan

Batch = dict[str, torch.Tensor]
PREFIX = "align_"  # batch keys of the pairs, beside the language-modelling batch's own


@dataclass
class AlignmentConfig:
    """Settings of the alignment objective.

    Args:
        weight: weight of the alignment loss. 10 by default: on the demo (e5, a language adapter for sk, 30
            steps), weight 1 left the held-out pairs' loss above that of the English adapter applied to the
            target's text (0.18 against 0.15), while 10 brought it to 0.11 for 0.15 nats more held-out LM loss;
            chosen on held-out pairs and held-out text, no task data.
        lm_weight: weight of the language-modelling loss (0: alignment alone).
        max_length: tokens of a string at most (the pairs are names and short phrases).
        dev_pairs: held-out pairs the checkpoint is chosen on at most.
    """

    weight: float = 10.0
    lm_weight: float = 1.0
    max_length: int = 32
    dev_pairs: int = 256

    def __post_init__(self) -> None:
        for name in ("weight", "lm_weight"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value >= 0)
            ):
                raise XLTError(f"alignment.{name} must be a finite number >= 0, got {value!r}")
        if self.weight == 0:
            raise XLTError("alignment.weight must be > 0 (to train without alignment, use a configuration without it)")
        for name in ("max_length", "dev_pairs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise XLTError(f"alignment.{name} must be an integer >= 1, got {value!r}")


@dataclass
class AlignmentRun:
    """Parallel text for one language representation's run.

    Args:
        pairs: a JSON-lines file, one pair a line: ``{"<source code>": "...", "text": "...", "split": "train"}``
            (split ``train`` or ``dev``; the built-in files are ``xlt/data/parallel/{lang}.jsonl``).
        source: the source language's code (the field holding the source side).
        teacher: the source's language representation in the bank (its name), or None for the model alone.
        config: the objective's settings.
    """

    pairs: Path
    source: str
    teacher: str | None
    config: AlignmentConfig


def read_pairs(path: Path, source: str) -> dict[str, list[tuple[str, str]]]:
    """The file's (source, text) pairs by split; a clear error on a malformed line."""
    out: dict[str, list[tuple[str, str]]] = {"train": [], "dev": []}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise XLTError(f"parallel text {path}: cannot read it ({type(exc).__name__}: {exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        ok = isinstance(row, dict) and row.get("split") in out
        ok = ok and all(isinstance(row.get(k), str) and row[k].strip() for k in (source, "text"))  # type: ignore[union-attr]
        if not ok:
            raise XLTError(
                f'parallel text {path}:{number}: each line must be {{"{source}": str, "text": str, "split": '
                '"train"|"dev"}, both strings non-empty'
            )
        out[row["split"]].append((row[source], row["text"]))  # type: ignore[index]
    if not out["train"] or not out["dev"]:
        raise XLTError(
            f"parallel text {path}: needs pairs in both splits, train and dev (found {len(out['train'])} "
            f"and {len(out['dev'])})"
        )
    return out


def pooled(model: XLTModel, batch: Batch, plan: Plan | None) -> torch.Tensor:
    """Mean of the final (encoder) states over the string's tokens, under ``plan``."""
    kwargs: dict[str, torch.Tensor] = {}
    if model.host.family == "encoder_decoder":  # the encoder's states are wanted; the decoder runs one step
        start = getattr(model.base.config, "decoder_start_token_id", None) or 0
        kwargs["decoder_input_ids"] = torch.full_like(batch["input_ids"][:, :1], int(start))
    out = model(batch["input_ids"], batch["attention_mask"], plan=plan, **kwargs)
    hidden = out.encoder_hidden_states if out.encoder_hidden_states is not None else out.hidden_states
    if hidden is None:
        raise XLTError(
            f"alignment needs the model's final states, which the {type(model.host).__name__} family does not return "
            "(use an encoder model, or train language representations without alignment)"
        )
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class Pairs:
    """Tokenised pairs with the teacher's vectors, and the batches of both splits. ``pairs``: the file as
    ``read_pairs`` returns it, when the caller has read it already."""

    def __init__(
        self, model: XLTModel, run: AlignmentRun, seed: int, pairs: dict[str, list[tuple[str, str]]] | None = None
    ) -> None:
        pairs = pairs if pairs is not None else read_pairs(run.pairs, run.source)
        self.config, self.seed = run.config, seed
        self.tokenizer = model.tokenizer
        pad_id = getattr(self.tokenizer, "pad_token_id", None)
        self.pad_id = int(pad_id) if pad_id is not None else 0  # masked out: any id serves (decoders have none)
        self.train = [text for _, text in pairs["train"]]
        dev = pairs["dev"][: run.config.dev_pairs]
        self.dev = [text for _, text in dev]
        teacher = Plan((run.teacher,)) if run.teacher is not None else None
        self.teacher_train = self._teacher(model, [s for s, _ in pairs["train"]], teacher)
        self.teacher_dev = self._teacher(model, [s for s, _ in dev], teacher)
        # The loss is divided by the teachers' mean squared norm: one weight means the same for every model width.
        self.scale = float(self.teacher_train.pow(2).sum(-1).mean().clamp(min=1e-12))

    def encode(self, texts: list[str]) -> Batch:
        """Right-padded by hand, as every batch of xlt's is: a tokenizer may have no pad token or pad left."""
        ids = self.tokenizer(texts, truncation=True, max_length=self.config.max_length)["input_ids"]
        input_ids, mask = pad([row or [self.pad_id] for row in ids], self.pad_id)
        return {"input_ids": input_ids, "attention_mask": mask}

    @torch.no_grad()
    def _teacher(self, model: XLTModel, texts: list[str], plan: Plan | None, size: int = 64) -> torch.Tensor:
        was = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            parts = []
            for i in range(0, len(texts), size):
                batch = {k: v.to(device) for k, v in self.encode(texts[i : i + size]).items()}
                parts.append(pooled(model, batch, plan).float().cpu())
            return torch.cat(parts)
        finally:
            model.train(was)

    def batch(self, index: int, rows: int) -> Batch:
        """Global micro-batch ``index``'s pairs: ``rows`` of a per-epoch permutation (a function of the seed)."""
        n = len(self.train)
        orders: dict[int, np.ndarray] = {}  # a batch spans at most two epochs: each permutation drawn once
        chosen = []
        for position in range(index * rows, (index + 1) * rows):
            epoch, offset = divmod(position, n)
            if epoch not in orders:
                orders[epoch] = np.random.default_rng([self.seed, 7, epoch]).permutation(n)
            chosen.append(int(orders[epoch][offset]))
        return self._batch([self.train[i] for i in chosen], self.teacher_train[chosen])

    def dev_batches(self, rows: int) -> list[Batch]:
        return [
            self._batch(self.dev[i : i + rows], self.teacher_dev[i : i + rows]) for i in range(0, len(self.dev), rows)
        ]

    def _batch(self, texts: list[str], teacher: torch.Tensor) -> Batch:
        enc = self.encode(texts)
        return {
            f"{PREFIX}input_ids": enc["input_ids"],
            f"{PREFIX}attention_mask": enc["attention_mask"],
            f"{PREFIX}teacher": teacher,
        }

    def loss(self, module: nn.Module, batch: Batch, plan: Plan | None) -> torch.Tensor:
        """Mean squared distance of the student's pooled states from the teacher's, over their mean squared norm."""
        inputs = {"input_ids": batch[f"{PREFIX}input_ids"], "attention_mask": batch[f"{PREFIX}attention_mask"]}
        student = pooled(module.model, inputs, plan).float()
        return (student - batch[f"{PREFIX}teacher"]).pow(2).sum(-1).mean() / self.scale

    def with_pairs(
        self, stream: Callable[[int, int, int], Iterator[Batch]], rows: int
    ) -> Callable[[int, int, int], Iterator[Batch]]:
        """The LM micro-batch stream with global micro-batch i's pairs added to micro-batch i."""

        def combined(start: int, rank: int, world: int) -> Iterator[Batch]:
            for index, batch in enumerate(stream(start, rank, world), start):
                extra = self.batch(index, rows)
                yield {**batch, **{k: v[rank::world] for k, v in extra.items()}}

        return combined

    def objective(
        self, lm_loss: Callable[[nn.Module, Batch], tuple[torch.Tensor, int]], plan: Plan
    ) -> Callable[[nn.Module, Batch], tuple[torch.Tensor, int]]:
        """``lm_weight`` x the LM loss + ``weight`` x the alignment loss of one combined batch."""
        c = self.config

        def loss(module: nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
            lm_batch = {k: v for k, v in batch.items() if not k.startswith(PREFIX)}
            total = c.weight * self.loss(module, batch, plan)
            if not c.lm_weight:  # alignment alone: the LM pass would only be thrown away
                return total, int(lm_batch["attention_mask"].sum())
            lm, tokens = lm_loss(module, lm_batch)
            return total + c.lm_weight * lm, tokens

        return loss

    def dev_loss(self, module: nn.Module, plan: Plan | None, rows: int) -> float:
        """The alignment loss on the held-out pairs (the caller runs it without gradients)."""
        device = next(module.parameters()).device
        total, count = 0.0, 0
        for batch in self.dev_batches(rows):
            batch = {k: v.to(device) for k, v in batch.items()}
            size = batch[f"{PREFIX}teacher"].shape[0]
            total += float(self.loss(module, batch, plan)) * size
            count += size
        return total / max(count, 1)
