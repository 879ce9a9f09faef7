"""The LM head fitted on cached states of the frozen base.

The base never changes while its LM head trains, so its hidden states at the masked positions are a fixed
dataset: the base runs once over ``cached_segments`` masked training segments (and the validation segments),
and the head (dense + GELU + LayerNorm + output bias, about 0.2M parameters) is then fitted on those
(state, target) pairs for several epochs, each costing seconds instead of a pass of the 12-layer encoder per
step. The segments, their masking and the validation batches are the step loop's own: the training segments
are the first ``cached_segments`` of the pooled training stream, masked batch i with the rng (seed, i) that
micro-batch i of the step loop gets.

The fit runs on ``xlt.training.loop.train`` (the head is the whole module; a batch is ``{"hidden",
"target"}``), so it keeps the loop's best weights, early stopping, logs and checkpoints. A fit interrupted
after a checkpoint resumes exactly on a rerun: the cache is computed again from the same seed (on the same
machine and thread count, the same states), then the loop resumes from its checkpoint.

A unigram model of the training text (add-one smoothed over the head's vocabulary) is scored on the same
held-out targets as the head, as is the uniform distribution: the baselines a useful head must beat. The head
starts from it (``initialise``: its log probabilities as the output bias, plus the base's states read through
the tied embeddings at the scale that best predicts the training targets) and spends its epochs on what the
context adds. The learning rate decays linearly to 0 over ``cached_epochs``, which therefore sets the fit's
length; early stopping (patience in epochs) ends it sooner once the held-out loss stops improving.

Sizes for the demo (multilingual-e5-small, 16 languages, 32-token inputs, 2 CPU cores): 1536 segments hold
~5.7k masked positions, cached in ~45 s; an epoch over them takes ~8 s.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count, islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xlt.errors import XLTError
from xlt.model import XLTModel
from xlt.plan import Plan
from xlt.training.data import Collate, SegmentSource, fixed_batches
from xlt.training.lm_head import MaskedLMHead
from xlt.training.loop import Batch, TrainConfig, TrainResult, train

# Masked positions per optimiser step: large enough to keep the [positions x vocabulary] logits matmul
# efficient, small enough for dozens of updates per epoch on a few thousand segments.
FIT_BATCH = 256
# Epochs without a better held-out loss before the fit stops, when train.early_stopping_patience is unset: an
# epoch costs seconds, and the best weights are kept whatever the patience.
DEFAULT_PATIENCE = 3
# Rows per forward of the base while caching: a 12-layer encoder on CPU runs about 1.5x faster per row in
# batches of 128 than of 16 (the step loop's micro-batch).
FORWARD_ROWS = 128
# The LayerNorm gains ``initialise`` tries, on the first INIT_POSITIONS training states (forward passes only).
GAINS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0)
INIT_POSITIONS = 2048
# Masked positions scored per forward when evaluating (no gradient: only memory bounds it).
EVAL_CHUNK = 1024


@dataclass(frozen=True)
class CachedFit:
    """What the fit takes from an ``LMHeadRun``: its ``cached_segments``, ``cached_epochs``,
    ``validation_segments`` and ``train`` settings."""

    segments: int
    epochs: int
    validation_segments: int
    train: TrainConfig


@dataclass
class CachedStates:
    """The frozen base's last hidden states at masked positions, with the head's output index of each target."""

    hidden: torch.Tensor  # [n, d], float32, on the CPU
    target: torch.Tensor  # [n], indices into the head's vocab_ids
    segments: int

    def __len__(self) -> int:
        return int(self.target.numel())


def check_cached_options(segments: Any, epochs: Any) -> None:
    """Refuse cached-fit options no run could honour, before anything is claimed or loaded."""
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 0:
        raise XLTError(
            f"cached_segments must be an integer >= 0, got {segments!r} (0 trains the LM head through the base "
            "step by step)"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise XLTError(f"cached_epochs must be an integer >= 1, got {epochs!r}")


def masked_batches(segments: Sequence[list[int]], collate: Collate, micro: int, seed: int) -> list[Batch]:
    """``segments`` masked once, batch i with rng (seed, i): what the step loop's micro-batch i would be."""
    return [
        collate(segments[i : i + micro], np.random.default_rng([seed, i // micro]))
        for i in range(0, len(segments), micro)
    ]


def cache_states(model: XLTModel, head: MaskedLMHead, batches: Sequence[Batch]) -> CachedStates:
    """Run the frozen base (eval mode, no plan, no gradient) once over ``batches`` and keep the states at their
    masked positions whose token is in the head's vocabulary (the others are ignored by the loss as well).
    Rows are independent, so several masked batches share a forward (``FORWARD_ROWS`` rows)."""
    device = model.host.input_embeddings(model.base).weight.device
    hidden, target, rows = [], [], 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for group in _groups(batches):
                batch = {k: v.to(device) for k, v in group.items()}
                out = model(batch["input_ids"], batch["attention_mask"], plan=Plan())
                chosen = batch["labels"] != -100
                index = head.targets(batch["labels"][chosen])
                keep = index != -100
                hidden.append(out.hidden_states[chosen][keep].float().cpu())
                target.append(index[keep].cpu())
                rows += int(batch["input_ids"].shape[0])
    finally:
        model.train(was_training)
    dim = int(head.dense.in_features)
    return CachedStates(
        torch.cat(hidden) if hidden else torch.zeros(0, dim),
        torch.cat(target) if target else torch.zeros(0, dtype=torch.long),
        rows,
    )


def _groups(batches: Sequence[Batch]) -> Iterator[Batch]:
    """Consecutive batches of the same width joined up to ``FORWARD_ROWS`` rows (packed segments all have one
    width; a batch of another width starts a new group, so nothing is padded beyond what its collate did)."""
    pending: list[Batch] = []
    for batch in batches:
        if pending and batch["input_ids"].shape[1] != pending[0]["input_ids"].shape[1]:
            yield _joined(pending)
            pending = []
        pending.append(batch)
        if sum(b["input_ids"].shape[0] for b in pending) >= FORWARD_ROWS:
            yield _joined(pending)
            pending = []
    if pending:
        yield _joined(pending)


def _joined(batches: list[Batch]) -> Batch:
    return {key: torch.cat([b[key] for b in batches]) for key in ("input_ids", "attention_mask", "labels")}


def token_counts(head: MaskedLMHead, counts: Counter[int]) -> torch.Tensor:
    """``counts`` (token id -> occurrences) over the head's output indices; ids outside its vocabulary dropped."""
    totals = torch.zeros(int(head.vocab_ids.numel()), dtype=torch.float64)
    if counts:
        ids = torch.tensor(list(counts), dtype=torch.long)
        values = torch.tensor(list(counts.values()), dtype=torch.float64)
        index = head.targets(ids.to(head.lookup.device)).cpu()
        keep = index != -100
        totals.index_add_(0, index[keep], values[keep])
    return totals


def unigram_log_probs(totals: torch.Tensor) -> torch.Tensor:
    """Add-one smoothed unigram log probabilities over the head's vocabulary (every output may occur)."""
    return torch.log(totals + 1) - math.log(float(totals.sum()) + totals.numel())


def unigram_loss(log_probs: torch.Tensor, states: CachedStates) -> float | None:
    """Cross-entropy of the unigram model on ``states``' targets (None without any)."""
    if not len(states):
        return None
    return float(-log_probs[states.target].mean())


def initialise(head: MaskedLMHead, log_probs: torch.Tensor, training: CachedStates) -> float:
    """Start ``head`` as the unigram model plus the base's own states read through the tied embeddings: output
    bias = the unigram log probabilities, dense = identity, and the LayerNorm gain (one value for every
    dimension) that best predicts a sample of the training targets among ``GAINS``; returns that gain.

    Gain 0 is the unigram model alone, so the start is never worse than it on the sample. Left at their random
    init, the transform's unit-variance outputs times the embeddings add logit noise of about the embeddings'
    norm (1.6 on e5), which the fit first has to unlearn. On the demo's e5 head (1536 segments, 8 epochs) the
    held-out loss ends at 8.08 from this start, at 8.24 from the unigram bias with the dense layer random."""
    decoder = head.decoder_weight().detach()
    totals = torch.zeros(len(GAINS), dtype=torch.float64)
    with torch.no_grad():
        head.bias.copy_(log_probs.to(head.bias.dtype))
        head.dense.weight.copy_(torch.eye(head.dense.in_features))
        head.dense.bias.zero_()
        head.norm.weight.fill_(1.0)
        # With one gain for every dimension (and LayerNorm shift 0) the logits are gain * reading + bias: the
        # reading is computed once per chunk, whatever the number of gains tried.
        for start in range(0, min(len(training), INIT_POSITIONS), EVAL_CHUNK):
            end = min(start + EVAL_CHUNK, INIT_POSITIONS)
            reading = head.transform(training.hidden[start:end].to(decoder.device)) @ decoder.T
            target = training.target[start:end].to(decoder.device)
            for i, gain in enumerate(GAINS):
                logits = (gain * reading + head.bias).float()
                totals[i] += float(F.cross_entropy(logits, target, reduction="sum"))
        best = GAINS[int(totals.argmin())]
        head.norm.weight.fill_(best)
    return best


def held_out_loss(head: MaskedLMHead, states: CachedStates, decoder: torch.Tensor) -> float:
    """The head's mean cross-entropy over every cached position (no gradient)."""
    device = decoder.device
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(states), EVAL_CHUNK):
            hidden = states.hidden[start : start + EVAL_CHUNK].to(device)
            target = states.target[start : start + EVAL_CHUNK].to(device)
            logits = head(hidden, decoder).float()
            total += float(F.cross_entropy(logits, target, reduction="sum"))
    return total / len(states)


def epoch_batches(states: CachedStates, size: int, seed: int) -> Any:
    """A ``BatchStream`` over the cached positions: epoch e in the order of rng (seed, e), ``size`` per batch
    (the last one of an epoch shorter), so batch i is the same whichever step a resumed run starts from."""
    per_epoch = math.ceil(len(states) / size)

    def stream(start: int, rank: int, world: int) -> Iterator[Batch]:
        order, current = None, -1
        for index in count(start):
            epoch, within = divmod(index, per_epoch)
            if epoch != current:
                order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(states)))
                current = epoch
            assert order is not None
            rows = order[within * size : (within + 1) * size][rank::world]
            yield {"hidden": states.hidden[rows], "target": states.target[rows]}

    return stream


def fit_config(config: TrainConfig, positions: int, epochs: int) -> TrainConfig:
    """The run's TrainConfig as the fit's step loop reads it: ``FIT_BATCH`` positions per step, an evaluation
    (and a checkpoint, where the run asks for checkpoints) every epoch, at most ``epochs`` epochs; optimiser,
    learning rate, weight decay, warm-up, clipping, seed and logging as the run gives them."""
    per_epoch = math.ceil(positions / FIT_BATCH)
    return dataclasses.replace(
        config,
        steps=per_epoch * epochs,
        batch_size=FIT_BATCH,
        gradient_accumulation=1,
        eval_every=per_epoch,
        checkpoint_every=per_epoch if config.checkpoint_every else 0,
        early_stopping_patience=config.early_stopping_patience or DEFAULT_PATIENCE,
    )


def fit_head(
    head: MaskedLMHead,
    training: CachedStates,
    validation: CachedStates,
    config: TrainConfig,
    out: Path,
    log: Any,
) -> TrainResult:
    """Fit ``head`` on the cached training states with the step loop (``config`` from ``fit_config``); the
    best weights on the validation states are restored (the last ones without validation states)."""
    decoders: dict[torch.device, torch.Tensor] = {}
    base_decoder = head.decoder_weight().detach()

    def decoder_on(device: torch.device) -> torch.Tensor:
        # The loop may place the head on its accelerator's device: the frozen table follows it once.
        if device not in decoders:
            decoders[device] = base_decoder.to(device)
        return decoders[device]

    def loss(module: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
        logits = module.model(batch["hidden"], decoder_on(batch["hidden"].device)).float()
        return F.cross_entropy(logits, batch["target"]), int(batch["target"].numel())

    def evaluate() -> dict[str, float]:
        return {"loss": held_out_loss(head, validation, decoder_on(head.bias.device))}

    return train(
        config=config,
        model=head,
        trainable={"lm_head": head},
        kind="lm_head",
        loss_fn=loss,
        batches=epoch_batches(training, FIT_BATCH, config.seed),
        evaluate=evaluate if len(validation) else None,
        output_dir=out,
        metric="loss",
        log=log,
    )


def cache_run(
    model: XLTModel, head: MaskedLMHead, collate: Collate, source: SegmentSource, fit: CachedFit
) -> tuple[CachedStates, CachedStates]:
    """The training and validation states of ``fit``."""
    micro = fit.train.batch_size // fit.train.gradient_accumulation
    segments = list(islice(source.train(), fit.segments))
    training = cache_states(model, head, masked_batches(segments, collate, micro, fit.train.seed))
    held = source.validation(fit.validation_segments)
    validation = cache_states(model, head, fixed_batches(held, collate, micro, fit.train.seed))
    if not len(training):
        raise XLTError(
            f"{source.describe()}: the {len(segments)} cached segments hold no masked token of the LM head's "
            "vocabulary; give more text or raise cached_segments"
        )
    return training, validation


def fit_cached_head(
    model: XLTModel,
    head: MaskedLMHead,
    collate: Collate,
    source: SegmentSource,
    counts: Counter[int],
    fit: CachedFit,
    out: Path,
    log: Any,
) -> dict[str, Any]:
    """Cache, start the head from the unigram model of ``counts`` (the training text's token counts, see
    ``initialise``), fit; returns the run's record for result.json."""
    started = time.perf_counter()
    training, validation = cache_run(model, head, collate, source, fit)
    caching = time.perf_counter() - started
    log(f"LM head: cached {len(training)} masked positions of {training.segments} segments in {caching:.0f}s")
    config = fit_config(fit.train, len(training), fit.epochs)
    warnings = _warnings(source, validation)
    for warning in warnings:
        log(f"warning: {warning}")
    log_probs = unigram_log_probs(token_counts(head, counts))
    started = time.perf_counter()
    gain = initialise(head, log_probs, training)
    result = fit_head(head, training, validation, config, out, log)
    fitting = time.perf_counter() - started
    result.warnings = [*warnings, *result.warnings]
    record = _record(result, training, validation, config, log_probs)
    record.update(caching_seconds=caching, fit_seconds=fitting, initial_gain=gain)
    log(_summary(record))
    return record


def _record(
    result: TrainResult,
    training: CachedStates,
    validation: CachedStates,
    config: TrainConfig,
    log_probs: torch.Tensor,
) -> dict[str, Any]:
    per_epoch = config.eval_every
    curve = [[round(h["step"] / per_epoch, 3), h["loss"]] for h in result.history]
    return {
        **result.to_dict(),
        "fit": "cached",
        "epochs": round(result.steps / per_epoch, 3),
        "best_loss": result.best["loss"] if result.best else None,
        "curve": curve,
        "unigram_loss": unigram_loss(log_probs, validation),
        "uniform_loss": math.log(log_probs.numel()),
        "cached_segments": training.segments,
        "cached_positions": len(training),
        "validation_segments": validation.segments,
        "validation_positions": len(validation),
        "positions_per_step": config.batch_size,
    }


def _warnings(source: SegmentSource, validation: CachedStates) -> list[str]:
    """What a fit without held-out text cannot do (a warning: the head still trains, on its last weights)."""
    if len(validation):
        return []
    return [
        f"{source.describe()}: the validation split holds no masked token of the LM head's vocabulary in segments "
        f"of {source.length} tokens, so the cached fit cannot evaluate, stop early or be compared with the "
        "unigram model, and keeps its last weights (give more text or raise validation_fraction)"
    ]


def _summary(record: dict[str, Any]) -> str:
    """The line that says whether the head learnt anything a unigram model does not know."""
    epochs = f"after {record['epochs']:g} epochs"
    if record["best_loss"] is None:
        return f"LM head: no validation text, last weights kept {epochs} (uniform {record['uniform_loss']:.2f})"
    return (
        f"LM head: held-out loss {record['best_loss']:.2f} (unigram {record['unigram_loss']:.2f}, uniform "
        f"{record['uniform_loss']:.2f}) {epochs}; caching {record['caching_seconds']:.1f}s, fit "
        f"{record['fit_seconds']:.1f}s"
    )
