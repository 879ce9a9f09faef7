"""Training a task representation in a source language, with that language's representation (if any)
active and frozen: the same plan at training and at test time (``[language ; task]``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from xlt.errors import XLTError
from xlt.languages import get_language
from xlt.model import XLTModel
from xlt.plan import Plan
from xlt.reps import BottleneckConfig, HeadConfig, LoRAConfig, ProbeConfig, PromptConfig, RepConfig
from xlt.reps.base import Representation
from xlt.tasks.base import check_template
from xlt.tasks.classification import ClassificationData, Example
from xlt.training.loop import TrainConfig, TrainResult, discarded_on_failure, train
from xlt.training.objectives import pad
from xlt.training.presets import TASK_INIT_TEXTS
from xlt.training.run import claim_output_dir, finish

Kind = Literal["prompt", "bottleneck", "lora", "probe"]
CONFIGS: dict[str, type[RepConfig]] = {
    "prompt": PromptConfig,
    "bottleneck": BottleneckConfig,
    "lora": LoRAConfig,
    "probe": ProbeConfig,
}


@dataclass
class TaskRun:
    """One task representation to train.

    Args:
        task: the task's name (e.g. "emoji").
        kind: "prompt" (task prompt), "bottleneck" (task adapter), "lora", or "probe" (an encoder's head alone
            on the frozen model: the linear probe).
        train_file: labelled training data (.jsonl, .csv or .tsv with text and label columns).
        dev_file: labelled development data in the source language (best-checkpoint selection).
        output_dir: run directory; the trained rep is written to output_dir/rep.
        source_language: the language of the training data.
        language_rep: name of the source language's representation in the model (e.g. "en/prompt"), active
            and frozen during training; None trains the task representation alone.
        labels: the task's labels (default: those found in the training data).
        template: text-to-text input template (families with a decoder); "{text}" is the example's text.
        max_length: input truncation length (tokens).
        rep: options of the kind's config.
        pooling: encoder head pooling, "mean" or "cls".
        train: optimisation settings (metric: dev accuracy).
        name: the rep's name in the model (default ``{task}/{kind}``).
    """

    task: str
    kind: Kind
    train_file: Path
    dev_file: Path
    output_dir: Path
    source_language: str = "en"
    language_rep: str | None = None
    labels: list[str] | None = None
    template: str = "{text}"
    max_length: int = 256
    rep: dict[str, Any] = field(default_factory=dict)
    pooling: Literal["mean", "cls"] = "mean"
    text_field: str = "text"
    label_field: str = "label"
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str | None = None


class TaskFormat:
    """How one family sees a classification example: a head over the input, or text to text."""

    def __init__(self, model: XLTModel, labels: list[str], template: str, max_length: int) -> None:
        if model.tokenizer is None:
            raise XLTError("task training needs the model's tokenizer (create the XLTModel with tokenizer=...)")
        self.model, self.labels, self.template, self.max_length = model, labels, template, max_length
        self.parse: Any = parse_label
        self.tok = model.tokenizer
        self.family = model.host.family
        self.pad = int(self.tok.pad_token_id if self.tok.pad_token_id is not None else 0)
        self.eos = self.tok.eos_token_id

    def _source(self, text: str) -> list[int]:
        ids = self.tok(self.template.format(text=text), truncation=True, max_length=self.max_length)["input_ids"]
        return list(ids)

    def _label_ids(self, label: str) -> list[int]:
        prefix = " " if self.family == "decoder" else ""
        ids = list(self.tok(prefix + label, add_special_tokens=False)["input_ids"])
        return ids + ([self.eos] if self.eos is not None else [])

    def collate(self, rows: Sequence[Example], rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.family == "encoder":
            ids, mask = pad([np.asarray(self._source(e.text)) for e in rows], self.pad)
            labels = torch.tensor([self.labels.index(e.label) for e in rows])
            return {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if self.family == "encoder_decoder":
            ids, mask = pad([np.asarray(self._source(e.text)) for e in rows], self.pad)
            targets, _ = pad([np.asarray(self._label_ids(e.label)) for e in rows], -100)
            return {"input_ids": ids, "attention_mask": mask, "labels": targets}
        sources = [self._source(e.text) for e in rows]
        full = [s + self._label_ids(e.label) for s, e in zip(sources, rows, strict=True)]
        ids, mask = pad([np.asarray(f) for f in full], self.pad)
        labels = ids.masked_fill(mask == 0, -100)
        for i, s in enumerate(sources):
            labels[i, : len(s)] = -100
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def predict(
        self, rows: Sequence[Example], plan: Plan | None = None, plans: Sequence[Plan] | None = None
    ) -> list[str | None]:
        """The predicted label per row, under one plan or one plan per row (routed); None where a generated
        answer matches no label."""
        ids, mask = pad([np.asarray(self._source(e.text)) for e in rows], self.pad)
        device = next(self.model.parameters()).device
        route = {"plan": plan} if plans is None else {"plans": list(plans)}
        if self.family == "encoder":
            logits = self.model(ids.to(device), mask.to(device), **route).logits
            return [self.labels[i] for i in logits.argmax(-1).tolist()]
        longest = max(len(self._label_ids(label)) for label in self.labels)
        out = self.model.generate(
            ids.to(device),
            mask.to(device),
            **route,
            max_new_tokens=longest + 1,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.pad,
        )
        texts = self.tok.batch_decode(out, skip_special_tokens=True)
        return [self.parse(text, self.labels) for text in texts]


def parse_label(text: str, labels: list[str]) -> str | None:
    """Exact label after stripping and case folding; otherwise None (counted wrong)."""
    folded = {label.strip().casefold(): label for label in labels}
    return folded.get(text.strip().casefold())


def accuracy(fmt: TaskFormat, rows: Sequence[Example], plan: Plan, batch_size: int) -> dict[str, float]:
    correct = 0
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        predictions = fmt.predict(chunk, plan)
        correct += sum(p == e.label for p, e in zip(predictions, chunk, strict=True))
    return {"accuracy": correct / len(rows)}


def epochs(rows: list[Example], seed: int) -> Iterator[Example]:
    for epoch in count():
        order = np.random.default_rng([seed, epoch]).permutation(len(rows))
        for index in order:
            yield rows[int(index)]


def rep_identity(rep: Representation) -> dict[str, Any]:
    """What a frozen representation is, for the run record: its name, kind, config and a digest of its weights
    (its creation time is not its identity: the same weights loaded again are the same run)."""
    digest = hashlib.sha256()
    for key, value in sorted(rep.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return {"name": rep.name, "kind": rep.kind, "config": rep.config.to_dict(), "weights": digest.hexdigest()}


def check_task_run(run: TaskRun) -> None:
    """Refuse what no training could fix, before any file is read: an unknown kind, an unknown source language
    (the registry's error lists the known ones), a template that is not a plain ``{text}`` one."""
    if run.kind not in CONFIGS:
        raise XLTError(f"kind must be one of {sorted(CONFIGS)}, got {run.kind!r}")
    get_language(run.source_language)
    check_template(run.template)
    if run.max_length < 2:  # the template's text and at least one token of the example
        raise XLTError(f"max_length must be >= 2, got {run.max_length}")


def train_task(model: XLTModel, run: TaskRun, log: Any = print) -> Path:
    """Train (or resume, or reuse) ``{task}/{kind}``; the language rep (if any) must be in the model."""
    check_task_run(run)
    data = ClassificationData.from_files(run.train_file, run.dev_file, run.labels, run.text_field, run.label_field)
    for warning in data.warnings:
        log(f"warning: {warning}")
    if run.language_rep is not None:
        model.rep(run.language_rep)  # a clear error if it is not loaded
    out = Path(run.output_dir)
    name = run.name or f"{run.task}/{run.kind}"
    rep_dir = out / "rep"
    language_fp = None
    if run.language_rep is not None:
        language_fp = rep_identity(model.rep(run.language_rep))
    if claim_output_dir(out, {"run": run, "base": model.fingerprint.to_dict(), "language_rep": language_fp}):
        log(f"{name}: already trained in {out}, reusing it")
        if name not in model.reps:
            model.load_rep(rep_dir)
        return rep_dir
    if name in model.reps:
        model.remove(name)
    with discarded_on_failure(model, name):
        rep = _add_task_rep(model, run, data.labels, name)
        result = _fit(model, run, data, name, rep, out, log)
        result.warnings = [*data.warnings, *result.warnings]
        finish(out, lambda: model.save_rep(name, rep_dir), result.to_dict())
    return rep_dir


def _add_task_rep(model: XLTModel, run: TaskRun, labels: list[str], name: str) -> Representation:
    head = None
    if model.host.supports_heads:
        head = HeadConfig("sequence", num_labels=len(labels), labels=labels, pooling=run.pooling)
    options = dict(run.rep)
    if run.kind == "probe" and head is None:
        raise XLTError(f"{model.host.name} models take no head, so there is no probe to train (use another kind)")
    if run.kind == "prompt" and "init_text" not in options and options.get("init", "text") == "text":
        default = f"Classify the {run.task} of the text in {{language}}:"
        options["init_text"] = TASK_INIT_TEXTS.get(run.task, default)  # the paper's text for its four tasks
    # The head (the rep body has its own config seed) is initialised from the run's seed, not from whatever the
    # global RNG holds; a prompt's init text names the source language.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.train.seed)
        return model.add_task(
            run.task,
            CONFIGS[run.kind].from_dict(options),
            head=head,
            name=name,
            language_name=get_language(run.source_language).name,
        )


def _fit(
    model: XLTModel, run: TaskRun, data: ClassificationData, name: str, rep: Representation, out: Path, log: Any
) -> TrainResult:
    from xlt.training.data import micro_batches

    plan = Plan.of(language=run.language_rep, task=name)
    fmt = TaskFormat(model, data.labels, run.template, run.max_length)

    def loss_fn(module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        out = module.model(batch["input_ids"], batch["attention_mask"], plan=plan, labels=batch["labels"])
        return out.loss, int(batch["attention_mask"].sum())

    micro = run.train.batch_size // run.train.gradient_accumulation
    batches = micro_batches(lambda: epochs(data.train, run.train.seed), fmt.collate, micro, run.train.seed)
    trainable: dict[str, nn.Module] = {name: rep}
    return train(
        config=run.train,
        model=model,
        trainable=trainable,
        kind=run.kind,
        loss_fn=loss_fn,
        batches=batches,
        evaluate=lambda: accuracy(fmt, data.dev, plan, max(micro, 8)),
        output_dir=out,
        metric="accuracy",
        log=log,
    )
