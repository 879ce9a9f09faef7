"""One batch of served inputs computed in one routed forward (heads) or one routed generation (text to text),
each row under its own plan, and each output decoded as its task decodes it: labels with their probabilities
for classification heads, tags for token heads, a span of the context for span heads, text for generation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch

from xlt.batching import pad
from xlt.errors import XLTError
from xlt.model import XLTModel
from xlt.plan import Plan
from xlt.tasks.base import Task
from xlt.tasks.data import Example
from xlt.tasks.head_inputs import best_spans

HeadSignature = tuple[str, int]  # (head type, number of labels): what rows of one batch must share


@dataclass(frozen=True)
class Format:
    """How a group of inputs is encoded and decoded: its task, the labels of its head (or of its closed label
    set), its input length in tokens, its head (None: text to text) and the source language of its task
    representation. Inputs of one format may share a batch."""

    task: Task
    labels: tuple[str, ...]
    max_length: int
    head: HeadSignature | None
    source: str | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        return (id(self.task), self.labels, self.max_length, self.head)


@dataclass
class Item:
    """One input waiting for its batch: what it is, under which plan, and where its answer goes."""

    example: Example
    plan: Plan
    fmt: Format
    max_new_tokens: int
    enqueued: float
    future: asyncio.Future[dict[str, Any]] = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.example.text) + len(self.example.pair or "")

    @property
    def key(self) -> tuple[Any, ...]:
        """What inputs of one batch share: the format, and whether they are pairs (a task encodes a batch of
        pairs and a batch of single texts differently, so they never mix)."""
        return (*self.fmt.key, self.example.pair is not None)


@cache
def generic_task(kind: str) -> Task:
    """The task that decodes a plan's head when the request names no task of an offered matrix."""
    from xlt.tasks.ner import NERTask
    from xlt.tasks.qa import QATask
    from xlt.tasks.seq2seq import Seq2SeqTask
    from xlt.tasks.text_classification import FileClassificationTask

    unused = "-"  # a served task decodes outputs; it reads no data files
    factories = {
        "sequence": lambda: FileClassificationTask("classification", unused, unused, unused),
        "token": lambda: NERTask("tagging", unused, unused, unused),
        "span": lambda: QATask("qa", unused, unused, unused),
        "generation": lambda: Seq2SeqTask("generation", unused, unused, unused),
    }
    return factories[kind]()


def example_of(text: str, pair: str | None, tokens: Sequence[str] | None) -> Example:
    """A served input as the task sees an example (a tagging input's words: its tokens, or its text split at
    whitespace)."""
    words = tuple(tokens) if tokens else tuple(text.split())
    return Example(text=text if not tokens else " ".join(words), label="", pair=pair, tokens=words)


def compute(model: XLTModel, items: Sequence[Item], overhead: float = 0.0) -> list[dict[str, Any]]:
    """The outputs of ``items`` (one format); runs on the model's thread. Classification inputs are split by
    length into the forwards that cost least (``split``: ``overhead`` is a forward's fixed cost in tokens);
    each forward routes its rows, whatever their plans."""
    fmt = items[0].fmt
    with torch.inference_mode():
        if fmt.head is None:
            return _generate(model, fmt, items)
        if fmt.head[0] != "sequence" or len(items) == 1:
            return _heads(model, fmt, items)
        outputs: list[dict[str, Any]] = [{} for _ in items]
        for group in split(lengths(model, fmt, items), overhead):
            for index, output in zip(group, _heads(model, fmt, [items[i] for i in group]), strict=True):
                outputs[index] = output
        return outputs


def lengths(model: XLTModel, fmt: Format, items: Sequence[Item]) -> list[int]:
    """Each input's length as the model sees it: its tokens plus the soft prompts of its plan."""
    pairs = [i.example.pair for i in items]  # all or none (``Item.key``)
    if all(p is not None for p in pairs):
        tokens = model.tokenizer([i.example.text for i in items], pairs, truncation=True, max_length=fmt.max_length)
    else:
        texts = [fmt.task.doc_to_text(i.example) for i in items]
        tokens = model.tokenizer(texts, truncation=True, max_length=fmt.max_length)
    prompts: dict[Plan, int] = {}
    for item in items:
        if item.plan not in prompts:
            reps = [model.rep(name) for name in item.plan.reps]
            prompts[item.plan] = sum(int(r.body().shape[0]) for r in reps if r.entry == "input")
    return [len(ids) + prompts[i.plan] for ids, i in zip(tokens["input_ids"], items, strict=True)]


def split(lengths: Sequence[int], overhead: float) -> list[list[int]]:
    """Indices grouped into forwards of similar length: the consecutive groups (in length order) that minimise
    the total cost, a forward costing ``overhead`` plus its rows times its longest row (padding included)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ordered = [lengths[i] for i in order]
    best, cut = [0.0] + [float("inf")] * len(order), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(end):
            cost = best[start] + overhead + (end - start) * ordered[end - 1]
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(order)
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def forward_overhead(model: XLTModel) -> float:
    """A forward's fixed cost, in tokens of compute, measured on the base model: what a batch split by length
    must save in padding to pay for its second forward (tens of tokens on a CPU, thousands on a GPU)."""
    device = model.device

    def timed(rows: int, width: int) -> float:
        ids = torch.full((rows, width), 5, dtype=torch.long, device=device)
        mask = torch.ones_like(ids)
        kwargs = {"decoder_input_ids": ids[:, :1]} if model.host.family == "encoder_decoder" else {}
        best = float("inf")
        for _ in range(3):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model.base(input_ids=ids, attention_mask=mask, **kwargs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
        return best

    with torch.inference_mode():
        small, large = timed(1, 8), timed(16, 64)
    per_token = max(large - small, 1e-9) / (16 * 64 - 8)
    return max(0.0, small / per_token - 8)


def _heads(model: XLTModel, fmt: Format, items: Sequence[Item]) -> list[dict[str, Any]]:
    tokenizer, task, labels = model.tokenizer, fmt.task, list(fmt.labels)
    rows = [item.example for item in items]
    batch = task.encode(tokenizer, rows, labels, fmt.max_length, train=False)
    plans = [items[i].plan for i in batch.example]
    device = model.device
    logits = model(batch.input_ids.to(device), batch.attention_mask.to(device), plans=plans).logits.float().cpu()
    kind = fmt.head[0]  # type: ignore[index]
    if kind == "sequence":
        probs = logits.softmax(-1).tolist()
        found = task.decode(logits, batch, rows, labels)
        return [
            {"label": label, "scores": dict(zip(labels, map(float, p), strict=True))}
            for label, p in zip(found, probs, strict=True)
        ]
    if kind == "token":
        tags = task.decode(logits, batch, rows, labels)
        return [{"tokens": list(e.tokens), "tags": list(t[1])} for e, t in zip(rows, tags, strict=True)]
    contexts = [e.text for e in rows]
    spans = best_spans(logits, batch, contexts, getattr(task, "max_answer_tokens", 30))
    return [
        {"span": None if s is None else {"text": c[s[0] : s[1]], "start": s[0], "end": s[1], "score": s[2]}}
        for c, s in zip(contexts, spans, strict=True)
    ]


def _generate(model: XLTModel, fmt: Format, items: Sequence[Item]) -> list[dict[str, Any]]:
    tokenizer, task = model.tokenizer, fmt.task
    if tokenizer is None:
        raise XLTError("serving needs the model's tokenizer")
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    sources = [
        np.asarray(tokenizer(task.doc_to_text(i.example), truncation=True, max_length=fmt.max_length)["input_ids"])
        for i in items
    ]
    ids, mask = pad(sources, pad_id)
    limits = [item.max_new_tokens for item in items]
    device = model.device
    out = model.generate(
        ids.to(device),
        mask.to(device),
        plans=[item.plan for item in items],
        max_new_tokens=max(limits),
        do_sample=False,
        num_beams=1,
        pad_token_id=pad_id,
    )
    # Greedy decoding is row by row: a row's first N tokens are what a generation of N tokens gives it alone.
    start = 1 if model.host.family == "encoder_decoder" else 0  # the decoder's start token
    outputs = []
    for row, limit in enumerate(limits):
        text = tokenizer.decode(out[row, : start + limit], skip_special_tokens=True)
        answer: dict[str, Any] = {"text": text}
        if task.closed_labels and fmt.labels:
            answer["label"] = task.parse(text, list(fmt.labels))
        outputs.append(answer)
    return outputs
