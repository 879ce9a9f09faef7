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

from xlt.batching import pad
from xlt.errors import XLTError
from xlt.languages import get_language
from xlt.model import XLTModel
from xlt.plan import Plan
from xlt.reps.base import Representation
from xlt.reps.registry import role_kind
from xlt.tasks.base import Task, check_template
from xlt.tasks.data import ClassificationData, Example
from xlt.tasks.text_classification import FileClassificationTask
from xlt.training.buckets import bucket_bounds, bucketed_epochs, length_buckets, padded_bounds, padded_to_bounds
from xlt.training.compilation import check_compile
from xlt.training.data import micro_batches
from xlt.training.ensemble import entropy_minimised
from xlt.training.loop import TrainConfig, TrainResult, discarded_on_failure, train
from xlt.training.precision import training_device
from xlt.training.probe_fit import fit_probe, fits_converged, spelled_out
from xlt.training.run import claim_output_dir, finish, jsonable


@dataclass
class TaskRun:
    """One task representation to train.

    The task is given to ``train_task`` as a ``Task`` (the matrix's), or here as files (``train_file``,
    ``dev_file`` and the fields after them), from which ``file_task`` builds a text-classification task.

    Args:
        task: the task's name (e.g. "emoji").
        kind: a kind serving the task role: "prompt" (task prompt), "bottleneck" (task adapter), "lora", "probe"
            (an encoder's head alone on the frozen model: the linear probe), or one registered with
            ``register_kind``.
        train_file: labelled training data (.jsonl, .csv or .tsv with text and label columns); None when
            ``train_task`` is given the task.
        dev_file: labelled development data in the source language (best-checkpoint selection); None likewise.
        output_dir: run directory; the trained rep is written to output_dir/rep.
        source_language: the language of the training data.
        language_rep: name of the source language's representation in the model (e.g. "en/prompt"), active
            and frozen during training; None trains the task representation alone.
        labels: the task's labels (default: those found in the training data).
        template: text-to-text input template (families with a decoder); "{text}" is the example's text.
        max_length: input truncation length (tokens).
        rep: options of the kind's config.
        pooling: encoder head pooling, "mean" or "cls".
        train: optimisation settings (checkpoints are selected on the task's headline metric on dev).
        name: the rep's name in the model (default ``{task}/{kind}``).
        cycle_language_reps: language representations in the model (frozen) that the language slot cycles
            through during training, one per training row in turn (target-language-ready training); empty: the
            slot holds ``language_rep`` only. Development data is always scored with ``language_rep``.
        length_buckets: micro-batches are drawn from rows of similar length, in up to this many buckets chosen
            from the training data, and on a GPU padded to their bucket's bound (``xlt.training.buckets``); None
            or 0: random batches padded to their longest row, as runs made before buckets existed.
    """

    task: str
    kind: str
    train_file: Path | None
    dev_file: Path | None
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
    cycle_language_reps: list[str] = field(default_factory=list)
    length_buckets: int | None = 8

    def __post_init__(self) -> None:
        self.length_buckets = length_buckets(self.length_buckets)

    def file_task(self) -> Task:
        """The text-classification task this run's files describe (its dev file serves as test file too)."""
        if self.train_file is None or self.dev_file is None:
            raise XLTError("a task run needs train_file and dev_file, or a Task given to train_task(task=...)")
        return FileClassificationTask(
            self.task,
            self.train_file,
            self.dev_file,
            self.dev_file,
            labels=self.labels,
            template=self.template,
            text_field=self.text_field,
            label_field=self.label_field,
            pooling=self.pooling,
        )


class TaskFormat:
    """How one family sees a task's examples: a head over the input (encoders: the task encodes rows, windows
    or words and decodes the head's outputs), or teacher-forced text to text (the task's input and target,
    laid out by the host) with generation settings taken from the task's targets; and how predictions come
    back.

    ``source``: the language the task representation was trained in (its targets bound ``max_new_tokens``);
    ``max_new_tokens`` and ``num_beams`` as the matrix's ``generation`` section sets them (None: from the
    task's targets)."""

    def __init__(
        self,
        model: XLTModel,
        task: Task,
        labels: list[str],
        max_length: int,
        *,
        source: str | None = None,
        max_new_tokens: int | None = None,
        num_beams: int = 1,
    ) -> None:
        if model.tokenizer is None:
            raise XLTError("task training needs the model's tokenizer (create the XLTModel with tokenizer=...)")
        self.model, self.task, self.labels, self.max_length = model, task, labels, max_length
        self.tok = model.tokenizer
        self.host = model.host
        self.pad = int(self.tok.pad_token_id if self.tok.pad_token_id is not None else 0)
        self.eos = self.tok.eos_token_id
        self.source, self.num_beams = source, num_beams
        self._max_new_tokens = max_new_tokens
        # Whether a batch's labels align with its input positions (a decoder's text, a token head's tags), and are
        # padded with it; an encoder-decoder's labels are its decoder's.
        self.token_labels = self.host.family != "encoder_decoder"
        # Input tokens read by ``outputs`` so far (prompts excluded): evaluation's throughput counts them.
        self.tokens_read = 0

    def _source(self, example: Example) -> list[int]:
        text = self.task.doc_to_text(example)
        return list(self.tok(text, truncation=True, max_length=self.max_length)["input_ids"])

    def _target(self, answer: str) -> list[int]:
        ids = list(self.tok(self.host.answer_prefix + answer, add_special_tokens=False)["input_ids"])
        return ids + ([self.eos] if self.eos is not None else [])

    @property
    def max_new_tokens(self) -> int:
        """The longest target the task may have to generate, in tokens with its end of sequence: never a
        library default, which would cut long answers or waste steps on short labels. Computed once per task,
        source, tokenizer and label set (QA's training answers are tens of thousands)."""
        if self._max_new_tokens is None:
            train = self.task.path(self.source, "train") if self.source else None
            stamp = train.stat().st_mtime_ns if train is not None and train.is_file() else None
            tokenizer = (getattr(self.tok, "name_or_path", ""), len(self.tok), type(self.tok).__name__)
            key = (self.source, stamp, tokenizer, self.host.answer_prefix, tuple(self.labels))
            known: dict[Any, int] = self.task.__dict__.setdefault("_generation_bounds", {})
            if key not in known:
                targets = self.task.generation_targets(self.source, self.labels) if self.source else None
                texts = sorted(set(targets if targets else [self.task.verbalize(label) for label in self.labels]))
                if not texts:
                    raise XLTError(
                        f"task '{self.task.name}' has no targets to bound generation by (set max_new_tokens)"
                    )
                ids = self.tok([self.host.answer_prefix + t for t in texts], add_special_tokens=False)["input_ids"]
                known[key] = max(len(i) for i in ids) + (1 if self.eos is not None else 0) + 1
            self._max_new_tokens = known[key]
        return self._max_new_tokens

    def collate(self, rows: Sequence[Example], rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.host.supports_heads:
            return self.task.encode(self.tok, rows, self.labels, self.max_length, train=True).tensors()
        sources = [self._source(e) for e in rows]
        targets = [self._target(self.task.doc_to_target(e)) for e in rows]
        return self.host.text_to_text_batch(sources, targets, self.pad)

    def lengths(self, rows: Sequence[Example], chunk: int = 512) -> list[int]:
        """Each example's length in tokens as a training batch holds it (collated ``chunk`` at a time: a corpus of
        hundreds of thousands of rows is tokenised in batches; an example the task splits into several batch
        rows, such as a long QA context, takes its widest row)."""
        out: list[int] = []
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            mask = self.collate(part)["attention_mask"]
            if mask.shape[0] == len(part):
                out += [int(n) for n in mask.sum(1)]
            else:
                out += [int(self.collate([row])["attention_mask"].sum(1).max()) for row in part]
        return out

    def predict(
        self, rows: Sequence[Example], plan: Plan | None = None, plans: Sequence[Plan] | None = None
    ) -> list[Any]:
        """The prediction per row, under one plan or one plan per row (routed); for closed label sets, None
        where a generated answer is none of the task's labels."""
        return self.outputs(rows, plan, plans)[0]

    def outputs(
        self, rows: Sequence[Example], plan: Plan | None = None, plans: Sequence[Plan] | None = None
    ) -> tuple[list[Any], list[str | None]]:
        """The predictions and, for models that generate, the raw generated texts (None per row for heads)."""
        device = self.model.device
        if self.host.supports_heads:
            batch = self.task.encode(self.tok, rows, self.labels, self.max_length, train=False)
            self.tokens_read += int(batch.attention_mask.sum())
            # A row of the head's batch (a window of a long context) runs under its example's plan.
            route = {"plan": plan} if plans is None else {"plans": [plans[i] for i in batch.example]}
            logits = self.model(batch.input_ids.to(device), batch.attention_mask.to(device), **route).logits
            return self.task.decode(logits, batch, rows, self.labels), [None] * len(rows)
        ids, mask = pad([np.asarray(self._source(e)) for e in rows], self.pad)
        self.tokens_read += int(mask.sum())
        route = {"plan": plan} if plans is None else {"plans": list(plans)}
        out = self.model.generate(
            ids.to(device),
            mask.to(device),
            **route,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=self.num_beams,
            pad_token_id=self.pad,
        )
        texts = self.tok.batch_decode(out, skip_special_tokens=True)
        return [self.task.parse(text, self.labels) for text in texts], list(texts)

    def mixed(self, rows: Sequence[Example], plans: Sequence[Plan]) -> tuple[list[Any], torch.Tensor]:
        """Predictions from the head's distributions under each of ``plans``, mixed per input row with
        entropy-minimised weights (``xlt.training.ensemble``); and those weights ([rows, plans])."""
        if not self.host.supports_heads:
            raise XLTError("an output ensemble mixes a task head's distributions; this model family has no heads")
        device = self.model.device
        batch = self.task.encode(self.tok, rows, self.labels, self.max_length, train=False)
        ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
        probs = torch.stack([self.model(ids, mask, plan=plan).logits.float().softmax(-1) for plan in plans])
        scored = None
        if probs.dim() == 4:  # token heads: only each word's first sub-token is ever read as a tag
            scored = torch.zeros(probs.shape[1:3])
            for row, positions in enumerate(batch.words):
                for position in positions:
                    if position is not None and position < scored.shape[1]:
                        scored[row, position] = 1.0
        mixture, weights = entropy_minimised(probs.cpu(), scored)
        return self.task.decode(mixture.clamp_min(1e-30).log(), batch, rows, self.labels), weights


def dev_score(
    fmt: TaskFormat, rows: Sequence[Example], plan: Plan, batch_size: int, language: str | None = None
) -> dict[str, float]:
    """The task's metrics on dev examples (in ``language``), predicted ``batch_size`` at a time, shortest input
    first so that a batch pads little (each row's prediction does not depend on its batch)."""
    order = sorted(range(len(rows)), key=lambda i: len(fmt.task.doc_to_text(rows[i])))
    predictions: list[Any] = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, prediction in zip(chunk, fmt.predict([rows[i] for i in chunk], plan), strict=True):
            predictions[i] = prediction
    return fmt.task.scores_in(predictions, [fmt.task.reference(e) for e in rows], language)


def epochs(rows: list[Example], seed: int) -> Iterator[Example]:
    for epoch in count():
        order = np.random.default_rng([seed, epoch]).permutation(len(rows))
        for index in order:
            yield rows[int(index)]


def cycling(rows: Iterator[Example], slots: int) -> Iterator[tuple[Example, int]]:
    """Each training row with the language slot it is trained under: slot ``i % slots`` for the i-th row, so
    every language representation takes an equal share of the rows, and a resumed run the same ones."""
    for index, row in enumerate(rows):
        yield row, index % slots


def with_languages(
    collate: Any, rows: Sequence[tuple[Example, int]], rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    """The task's batch of ``rows``' examples plus ``language``: each row's language slot (one per batch row, so
    it is split across processes with the rest). Heads' encodings have one batch row per example."""
    batch = collate([row for row, _ in rows], rng)
    slots = torch.tensor([slot for _, slot in rows], dtype=torch.long)
    if batch["input_ids"].shape[0] != len(rows):
        raise XLTError(
            "cycle: this task's training batches do not hold one row per example (e.g. QA windows); train it "
            "without cycle"
        )
    return {**batch, "language": slots}


def rep_record(rep: Representation) -> dict[str, Any]:
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
    role_kind(run.kind, "task")
    get_language(run.source_language)
    check_template(run.template)
    check_compile(run.train.compile)
    if run.max_length < 2:  # the template's text and at least one token of the example
        raise XLTError(f"max_length must be >= 2, got {run.max_length}")


def check_file_task_run(run: TaskRun) -> None:
    """``check_task_run`` for a run that names its task's files (the command line's ``train-task``)."""
    missing = [f"--{name}" for name in ("train_file", "dev_file") if getattr(run, name) is None]
    if missing:
        raise XLTError(f"train-task needs {' and '.join(missing)} (the labelled training and dev files)")
    check_task_run(run)


def train_task(model: XLTModel, run: TaskRun, log: Any = print, *, task: Task | None = None) -> Path:
    """Train (or resume, or reuse) ``{task}/{kind}``; the language rep (if any) must be in the model.

    ``task`` is the source of the examples, their format, the head, the prompt's init text and the dev score
    that selects the checkpoint; without it, the run's files make a text-classification task.
    """
    check_task_run(run)
    run = spelled_out(run)  # a probe records its fit options, defaults included
    # A run of files records itself as it always has; a run given its task records the task's own fields.
    record = jsonable(run) if task is None else {**jsonable(run), **jsonable(task.record(run.source_language))}
    if not run.cycle_language_reps:  # a run without cycling records itself as runs did before the option
        record.pop("cycle_language_reps")
    task = run.file_task() if task is None else task
    task.check_family(model.host.family)
    data = task.training_data(run.source_language)
    for warning in data.warnings:
        log(f"warning: {warning}")
    if run.language_rep is not None:
        model.rep(run.language_rep)  # a clear error if it is not loaded
    out = Path(run.output_dir)
    name = run.name or f"{run.task}/{run.kind}"
    rep_dir = out / "rep"
    language = rep_record(model.rep(run.language_rep)) if run.language_rep is not None else None
    claim = {"run": record, "base": model.fingerprint.to_dict(), "language_rep": language}
    if run.cycle_language_reps:  # the cycled representations' weights determine the run as the source's do
        claim["cycle_language_reps"] = [rep_record(model.rep(name)) for name in run.cycle_language_reps]
    if claim_output_dir(out, claim):
        log(f"{name}: already trained in {out}, reusing it")
        if name not in model.reps:
            model.load_rep(rep_dir)
        return rep_dir
    if name in model.reps:
        model.remove(name)
    with discarded_on_failure(model, name):
        rep = _add_task_rep(model, run, task, name)
        fmt = TaskFormat(model, task, data.labels, run.max_length, source=run.source_language)
        if fits_converged(rep):  # the zero-shot baseline: a linear probe fitted to convergence, not for steps
            result: TrainResult = fit_probe(run, fmt, data, name, rep, log)
        else:
            result = _fit(model, run, fmt, data, name, rep, out, log)
        result.warnings = [*data.warnings, *result.warnings]
        finish(out, lambda: model.save_rep(name, rep_dir), result.to_dict())
    return rep_dir


def _add_task_rep(model: XLTModel, run: TaskRun, task: Task, name: str) -> Representation:
    head = task.head(run.source_language) if model.host.supports_heads else None
    options = dict(run.rep)
    if run.kind == "probe" and head is None:
        raise XLTError(f"{model.host.name} models take no head, so there is no probe to train (use another kind)")
    if run.kind == "prompt" and "init_text" not in options and options.get("init", "text") == "text":
        options["init_text"] = task.prompt_init_text()
    # The head (the rep body has its own config seed) is initialised from the run's seed, not from whatever the
    # global RNG holds; a prompt's init text names the source language.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.train.seed)
        return model.add_task(
            run.task,
            role_kind(run.kind, "task").config_cls.from_dict(options),
            head=head,
            name=name,
            language_name=get_language(run.source_language).name,
        )


def _fit(
    model: XLTModel,
    run: TaskRun,
    fmt: TaskFormat,
    data: ClassificationData,
    name: str,
    rep: Representation,
    out: Path,
    log: Any,
) -> TrainResult:
    plan = Plan.of(language=run.language_rep, task=name)
    metric = fmt.task.metric
    micro = run.train.batch_size // run.train.gradient_accumulation
    cycled = [Plan.of(language=language, task=name) for language in run.cycle_language_reps]

    def loss_fn(module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        route: dict[str, Any] = {"plan": plan}
        if cycled:
            route = {"plans": [cycled[int(i)] for i in batch["language"]]}
        # Text to text: the loss alone, over the vocabulary in fused chunks (heads ignore the option).
        out = module.model(batch["input_ids"], batch["attention_mask"], **route, labels=batch["labels"], logits=False)
        return out.loss, int(batch["attention_mask"].sum())

    def evaluate() -> dict[str, float]:
        return {metric: dev_score(fmt, data.dev, plan, max(micro, 8), run.source_language)[metric]}

    collate, examples = fmt.collate, lambda: epochs(data.train, run.train.seed)
    gpu, compiled = training_device().type == "cuda", run.train.compile
    if run.length_buckets and len(data.train) >= 2 * micro:
        lengths = fmt.lengths(data.train)
        bounds = bucket_bounds(lengths, run.length_buckets, multiple=1)  # the same buckets on every device
        if gpu or compiled:  # a shape per bucket, not per batch: a GPU's kernels, compiled graphs
            shapes = padded_bounds(bounds) if gpu else bounds
            collate = padded_to_bounds(fmt.collate, shapes, fmt.pad, fmt.token_labels, widen_targets=compiled)
        examples = lambda: bucketed_epochs(data.train, lengths, bounds, micro, run.train.seed)  # noqa: E731
    elif compiled:  # no buckets: one shape, the longest row's
        longest = [max(fmt.lengths(data.train))]
        collate = padded_to_bounds(fmt.collate, longest, fmt.pad, fmt.token_labels, widen_targets=True)
    if cycled:
        batches = micro_batches(
            lambda: cycling(examples(), len(cycled)),
            lambda rows, rng: with_languages(collate, rows, rng),
            micro,
            run.train.seed,
        )
    else:
        batches = micro_batches(examples, collate, micro, run.train.seed)
    trainable: dict[str, nn.Module] = {name: rep}
    return train(
        config=run.train,
        model=model,
        trainable=trainable,
        kind=run.kind,
        loss_fn=loss_fn,
        batches=batches,
        evaluate=evaluate,
        output_dir=out,
        metric=metric,
        log=log,
    )
