"""The training loop, on Hugging Face Accelerate: one loop for every kind, role and architecture.

Only the given trainable modules get gradients. Evaluation every ``eval_every`` steps keeps the best weights
(for every kind), which are restored at the end. Checkpoints every ``checkpoint_every`` steps hold the
trainable weights, the best ones, the optimiser, the schedule, every RNG and the step, written atomically as
safetensors + JSON; a killed run started again with the same config resumes exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from xlt.errors import FormatError, XLTError
from xlt.formats.atomic import atomic_directory
from xlt.training.checkpoint import (
    load_optimizer_state,
    load_state,
    optimizer_state,
    restore_rng,
    rng_state,
    save_state,
)
from xlt.training.optim import HEAD_LR, Defaults, OptimizerName, build_optimizer, linear_schedule

Batch = dict[str, torch.Tensor]
BatchStream = Callable[[int, int, int], Iterator[Batch]]  # (first micro-batch, rank, world) -> batches
LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, int]]  # -> (mean loss, tokens in the batch)
Evaluate = Callable[[], dict[str, float]]


@dataclass
class TrainConfig:
    """How to train. ``None`` for optimizer settings means the kind's default (see ``optim.KIND_DEFAULTS``).

    Args:
        steps: optimiser steps.
        batch_size: examples per optimiser step (over all processes and accumulation).
        gradient_accumulation: micro-batches per optimiser step.
        defaults: which per-kind optimiser defaults fill unset fields: "fast" (xlt's) or "paper".
        optimizer: "auto" (the kind's default), "adamw" or "adafactor".
        lr: learning rate.
        head_lr: learning rate of a task head trained beside a representation (None: ``optim.HEAD_LR``,
            1e-3); a head alone (a probe) takes ``lr``.
        weight_decay: weight decay.
        warmup_steps: linear warm-up steps before the linear decay.
        precision: "fp32" or "bf16" (fp16 is refused: it gives NaN on mT5).
        eval_every: evaluate (and keep the best weights) every N steps; 0 disables.
        early_stopping_patience: stop after N evaluations without improvement.
        checkpoint_every: write a resumable checkpoint every N steps; 0 disables.
        log_every: log the training loss every N steps.
        max_grad_norm: clip gradients to this norm (None: no clipping).
        seed: seed of data order, initialisation and dropout.
        tensorboard: write TensorBoard logs under the output directory.
        wandb: also log to Weights & Biases (needs wandb installed and configured).
        progress: show a progress bar.
    """

    steps: int = 1000
    batch_size: int = 32
    gradient_accumulation: int = 1
    defaults: Defaults = "fast"
    optimizer: OptimizerName = "auto"
    lr: float | None = None
    head_lr: float | None = None
    weight_decay: float | None = None
    warmup_steps: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    eval_every: int = 1000
    early_stopping_patience: int | None = None
    checkpoint_every: int = 1000
    log_every: int = 10
    max_grad_norm: float | None = None
    seed: int = 42
    tensorboard: bool = True
    wandb: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise XLTError(f"precision must be 'fp32' or 'bf16', got {self.precision!r} (fp16 overflows to NaN on mT5)")
        for name in ("steps", "batch_size", "gradient_accumulation"):
            if getattr(self, name) < 1:
                raise XLTError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.gradient_accumulation:
            raise XLTError(
                f"batch_size {self.batch_size} is not divisible by gradient_accumulation {self.gradient_accumulation}"
            )
        self._check_ranges()

    def _check_ranges(self) -> None:
        # Each of these would otherwise fail mid-run (log_every 0: a division by zero at the first step) or be
        # silently ignored (a negative patience stops at the first evaluation, a negative lr ascends the loss).
        if self.log_every < 1:
            raise XLTError(f"log_every must be >= 1, got {self.log_every}")
        for name in ("eval_every", "checkpoint_every", "warmup_steps", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise XLTError(f"{name} must be >= 0, got {value} (0 disables it)")
        for name in ("lr", "head_lr", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise XLTError(f"{name} must be > 0 (or unset for the default), got {value}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise XLTError(f"weight_decay must be >= 0, got {self.weight_decay}")


@dataclass
class TrainResult:
    steps: int
    best_step: int | None
    best: dict[str, float] | None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0
    stopped_early: bool = False
    warnings: list[str] = field(default_factory=list)  # what the run could not do as asked, for result.json

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_second": self.tokens_per_second}


class TrainingModule(nn.Module):
    """What the accelerator wraps: the model plus any extra trained or frozen modules, and the loss."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, extra: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.model = model
        self.extra = nn.ModuleDict(extra or {})
        self.loss_fn = loss_fn

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        loss, tokens = self.loss_fn(self, batch)
        return loss, torch.tensor(tokens)


def _trainable_state(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{name}::{k}": v.detach().cpu().clone() for name, m in modules.items() for k, v in m.state_dict().items()}


def _load_trainable(modules: dict[str, nn.Module], state: dict[str, torch.Tensor]) -> None:
    for name, module in modules.items():
        prefix = f"{name}::"
        module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})


@contextmanager
def discarded_on_failure(model: Any, name: str) -> Iterator[None]:
    """A representation added to the bank for a run leaves it again if the run fails (bad data mid-corpus, a
    NaN loss, an interrupt): its untrained weights must not be found under its name and used as if trained."""
    try:
        yield
    except BaseException:
        if name in model.reps:
            model.remove(name)
        raise


def better(metric: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new < old if metric.endswith("loss") else new > old


def train(
    *,
    config: TrainConfig,
    model: nn.Module,
    trainable: dict[str, nn.Module],
    kind: str,
    loss_fn: LossFn,
    batches: BatchStream,
    evaluate: Evaluate | None,
    output_dir: Path,
    metric: str = "loss",
    extra: dict[str, nn.Module] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train the parameters of ``trainable`` (everything else stays frozen) and restore the best weights."""
    output_dir = Path(output_dir)
    mixed_precision = "bf16" if config.precision == "bf16" else "no"
    # Accelerate keeps its state per process and refuses a second Accelerator with another precision (a bf16
    # run after an fp32 one in the same Python process): start the precision state afresh for every run (the
    # distributed state, PartialState, is kept).
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation,
        log_with=_trackers(config) or None,
        project_dir=str(output_dir),
        cpu=not torch.cuda.is_available(),
    )
    set_seed(config.seed)
    world = accelerator.num_processes
    micro = config.batch_size // config.gradient_accumulation
    if micro % world:
        raise XLTError(f"batch_size/gradient_accumulation = {micro} is not divisible by {world} processes")
    params = [p for m in trainable.values() for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    head_params = [p for m in trainable.values() if getattr(m, "head", None) is not None for p in m.head.parameters()]
    optimizer = build_optimizer(
        params,
        kind,
        config.optimizer,
        config.lr,
        config.weight_decay,
        head_params,
        head_lr=HEAD_LR if config.head_lr is None else config.head_lr,
        defaults=config.defaults,
    )
    scheduler = linear_schedule(optimizer, config.steps, config.warmup_steps)
    wrapped = TrainingModule(model, loss_fn, extra)
    wrapped, optimizer = accelerator.prepare(wrapped, optimizer)
    if accelerator.is_main_process and _trackers(config):
        accelerator.init_trackers("xlt")

    checkpoint_dir = output_dir / "checkpoint"
    state = {
        "step": 0,
        "best": None,
        "best_step": None,
        "patience": 0,
        "history": [],
        "tokens": 0,
        "seconds": 0.0,
        "stopped_early": False,
    }
    best_weights: dict[str, torch.Tensor] | None = None
    if (checkpoint_dir / "trainer.json").is_file():
        state, best_weights = _resume(checkpoint_dir, trainable, optimizer, scheduler)
        log(f"resuming from step {state['step']} ({checkpoint_dir})")

    step = int(state["step"])
    per_process = config.gradient_accumulation
    # Every process takes its rows of the same global micro-batches: a step consumes gradient_accumulation of
    # them whatever the number of processes.
    stream = batches(step * config.gradient_accumulation, accelerator.process_index, world)
    bar = tqdm(
        total=config.steps,
        initial=step,
        disable=not (config.progress and accelerator.is_main_process),
        desc="train",
        dynamic_ncols=True,
    )
    started = time.perf_counter()
    tokens_before = int(state["tokens"])
    tokens = 0
    stopped_early = bool(state.get("stopped_early", False))  # a run resumed after it stopped early stays stopped
    wrapped.train()
    while step < config.steps and not stopped_early:
        total_loss = 0.0
        step_tokens = 0
        for _ in range(per_process):
            batch = {k: v.to(accelerator.device) for k, v in next(stream).items()}
            with accelerator.accumulate(wrapped):
                loss, n = wrapped(batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            total_loss += float(loss.detach()) / per_process
            step_tokens += int(n)
        if world > 1:
            # The mean loss and the token count over all processes: every process then takes the same decisions
            # (a non-finite loss on one process must stop all of them, not leave the others waiting).
            stats = accelerator.reduce(
                torch.tensor([total_loss, float(step_tokens)], dtype=torch.float64, device=accelerator.device), "sum"
            )
            total_loss, step_tokens = float(stats[0]) / world, int(stats[1])
        tokens += step_tokens
        scheduler.step()
        step += 1
        if not math.isfinite(total_loss):
            raise XLTError(f"training loss became {total_loss} at step {step} (lower the learning rate, or use fp32)")
        elapsed = state["seconds"] + time.perf_counter() - started
        bar.update(1)
        bar.set_postfix(loss=f"{total_loss:.4f}", tok_s=f"{(tokens_before + tokens) / max(elapsed, 1e-9):.0f}")
        if step % config.log_every == 0 or step == config.steps:
            accelerator.log({"train/loss": total_loss, "train/lr": scheduler.get_last_lr()[0]}, step=step)
        if evaluate is not None and config.eval_every and (step % config.eval_every == 0 or step == config.steps):
            wrapped.eval()
            with torch.no_grad():
                scores = evaluate()
            wrapped.train()
            scores = {**scores, "step": step}
            state["history"].append(scores)
            accelerator.log({f"eval/{k}": v for k, v in scores.items() if k != "step"}, step=step)
            if metric not in scores:
                raise XLTError(f"evaluation returned {sorted(scores)}, not the metric {metric!r} to select on")
            if better(metric, scores[metric], state["best"]):
                state["best"], state["best_step"], state["patience"] = scores[metric], step, 0
                best_weights = _trainable_state(trainable)
            else:
                state["patience"] += 1
            if accelerator.is_main_process:  # once, through the run's log, above the progress bar
                # On a terminal the bar is cleared and redrawn below the line; in a log file that redraw would
                # repeat the bar's last state around every line.
                redraw = not bar.disable and _on_terminal(bar)
                if redraw:
                    bar.clear()
                log(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "step"))
                if redraw:
                    bar.refresh()
            if config.early_stopping_patience and state["patience"] >= config.early_stopping_patience:
                stopped_early = True
                state["stopped_early"] = True
        if (config.checkpoint_every and step % config.checkpoint_every == 0) or stopped_early:
            state["step"], state["tokens"] = step, tokens_before + tokens
            state["seconds"] = state["seconds"] + time.perf_counter() - started
            started, tokens_before, tokens = time.perf_counter(), tokens_before + tokens, 0
            if accelerator.is_main_process:
                _checkpoint(checkpoint_dir, state, trainable, best_weights, optimizer, scheduler)
            accelerator.wait_for_everyone()
        if stopped_early:
            break
    bar.close()
    seconds = float(state["seconds"]) + time.perf_counter() - started
    if best_weights is not None:
        _load_trainable(trainable, best_weights)
    # Not accelerator.end_training(): it also destroys the process group, which the caller still needs under
    # several processes (to save once, or to run a second training in the same launch).
    for tracker in accelerator.trackers:
        tracker.finish()
    for p in params:
        p.requires_grad_(False)
    best = next((h for h in state["history"] if h.get("step") == state["best_step"]), None)
    return TrainResult(
        step, state["best_step"], best, list(state["history"]), seconds, tokens_before + tokens, stopped_early
    )


def _resume(
    directory: Path, trainable: dict[str, nn.Module], optimizer: Any, scheduler: Any
) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """The checkpoint's trainer state and best weights, its weights, optimiser, schedule and RNGs restored.
    A checkpoint damaged on disk (edited, truncated, half copied) is one error saying how to start over."""
    try:
        state = load_state(directory, "trainer")
        _load_trainable(trainable, load_file(str(directory / "trainable.safetensors")))
        best = load_file(str(directory / "best.safetensors")) if (directory / "best.safetensors").is_file() else None
        inner = optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer
        load_optimizer_state(inner, load_state(directory, "optimizer"))
        scheduler.load_state_dict(load_state(directory, "scheduler"))
        restore_rng(load_state(directory, "rng"))
        int(state["step"])
    except XLTError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(
            f"checkpoint {directory} cannot be resumed ({type(exc).__name__}: {reason[:200]}); delete it to "
            "restart this run from step 0"
        ) from None
    return state, best


def _trackers(config: TrainConfig) -> list[str]:
    trackers = []
    if config.tensorboard:
        trackers.append("tensorboard")
    if config.wandb:
        trackers.append("wandb")
    return trackers


def _on_terminal(bar: Any) -> bool:
    stream = getattr(bar, "fp", None)
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _checkpoint(
    directory: Path,
    state: dict[str, Any],
    trainable: dict[str, nn.Module],
    best: dict[str, torch.Tensor] | None,
    optimizer: Any,
    scheduler: Any,
) -> None:
    inner = optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer
    with atomic_directory(directory, marker="trainer.json") as tmp:
        save_file(_trainable_state(trainable), str(tmp / "trainable.safetensors"))
        if best is not None:
            save_file(best, str(tmp / "best.safetensors"))
        save_state(tmp, "optimizer", optimizer_state(inner))
        save_state(tmp, "scheduler", scheduler.state_dict())
        save_state(tmp, "rng", rng_state())
        save_state(tmp, "trainer", json.loads(json.dumps(state)))
