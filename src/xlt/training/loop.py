"""The training loop, on Hugging Face Accelerate: one loop for every kind, role and architecture.

Only the given trainable modules get gradients. Evaluation every ``eval_every`` steps keeps the best weights
(for every kind), which are restored at the end. Checkpoints every ``checkpoint_every`` steps hold the
trainable weights, the best ones, the optimiser, the schedule, every RNG and the step, written atomically as
safetensors + JSON; a killed run started again with the same config resumes exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm

from xlt.errors import XLTError
from xlt.training.checkpoint import (
    TrainingState,
    has_checkpoint,
    load_checkpoint,
    load_trainable_weights,
    save_checkpoint,
    trainable_weights,
)
from xlt.training.compilation import Compilation, check_compiler, compiled_modules
from xlt.training.optim import HEAD_LR, Defaults, OptimizerName, build_optimizer, linear_schedule
from xlt.training.precision import CHOICES, resolve
from xlt.training.utilisation import Utilisation, counting, utilisation

Batch = dict[str, torch.Tensor]
BatchStream = Callable[[int, int, int], Iterator[Batch]]  # (first micro-batch, rank, world) -> batches
LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, int]]  # -> (mean loss, tokens in the batch)
Evaluate = Callable[[], dict[str, float]]


@dataclass
class TrainConfig:
    """How to train. ``None`` for optimizer settings means the kind's default (its registration's ``optimizer``).

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
        precision: "auto" (bf16 autocast where the training device multiplies bf16 natively, else fp32; resolved
            here, so the run records what it computes in: ``xlt.training.precision``), "fp32" or "bf16" (fp16 is
            refused: it gives NaN on mT5).
        eval_every: evaluate (and keep the best weights) every N steps; 0 disables.
        early_stopping_patience: stop after N evaluations without improvement.
        checkpoint_every: write a resumable checkpoint every N steps; 0 disables.
        log_every: log the training loss every N steps.
        max_grad_norm: clip gradients to this norm (None: no clipping).
        seed: seed of data order, initialisation and dropout.
        tensorboard: write TensorBoard logs under the output directory.
        wandb: also log to Weights & Biases (needs wandb installed and configured).
        progress: show a progress bar.
        compile: run the training steps through ``torch.compile`` (the frozen base compiled once per length
            bucket; ``xlt.training.compilation``); equal to the eager steps within float tolerance.
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
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    eval_every: int = 1000
    early_stopping_patience: int | None = None
    checkpoint_every: int = 1000
    log_every: int = 10
    max_grad_norm: float | None = None
    seed: int = 42
    tensorboard: bool = True
    wandb: bool = False
    progress: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in CHOICES:
            raise XLTError(
                f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r} (fp16 overflows to NaN on mT5)"
            )
        self.precision = resolve(self.precision)
        if not isinstance(self.compile, bool):
            raise XLTError(f"compile must be true or false, got {self.compile!r}")

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
    # FLOPs per token, achieved FLOP/s and their fraction of the device's measured peak (``Utilisation``); None
    # when this process ran no step (a finished run resumed)
    utilisation: dict[str, Any] | None = None

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
    session = _start(config, model, trainable, kind, loss_fn, extra, output_dir)
    try:
        checkpoint_dir = output_dir / "checkpoint"
        state = _resume(session, checkpoint_dir, log)
        # Every process takes its rows of the same global micro-batches: a step consumes gradient_accumulation of
        # them whatever the number of processes.
        stream = batches(state.step * config.gradient_accumulation, session.accelerator.process_index, session.world)
        bar = _progress_bar(session, state.step)
        clock = _Clock()
        session.wrapped.train()
        while state.step < config.steps and not state.stopped_early:
            loss, tokens = _step(session, stream)
            state.step += 1
            state.tokens += tokens
            if not math.isfinite(loss):
                raise XLTError(
                    f"training loss became {loss} at step {state.step} (lower the learning rate, or use fp32)"
                )
            _show_step(session, bar, clock, state, loss)
            if evaluate is not None and _due(config.eval_every, state.step, config.steps):
                _evaluate(session, evaluate, metric, state, bar, log)
            if _due(config.checkpoint_every, state.step) or state.stopped_early:
                _checkpoint(session, checkpoint_dir, state, clock)
        used = _utilisation(session, state, clock)
        if used is not None:  # the bar's summary: throughput against the device's measured peak
            bar.set_postfix(
                tok_s=f"{used.tokens_per_second * session.world:.0f}",
                gflop_s=f"{used.flops_per_second / 1e9:.3g}",
                peak=f"{100 * used.fraction:.1f}%",
            )
        bar.close()
        return _finish(session, state, clock, used)
    finally:
        if session.compilation is not None:
            session.compilation.release()


def _utilisation(session: _Session, state: TrainingState, clock: _Clock) -> Utilisation | None:
    seconds = clock.elapsed(state)
    if session.flops_per_token is None or seconds <= 0:
        return None
    rate = state.tokens / seconds / session.world  # this process's share, as its FLOPs per token are
    return utilisation(session.flops_per_token, rate, session.accelerator.device, session.config.precision)


@dataclass
class _Session:
    """The live objects of one training run in this process (rebuilt, not saved, when a run resumes)."""

    config: TrainConfig
    accelerator: Accelerator
    wrapped: nn.Module
    optimizer: Any
    scheduler: Any
    trainable: dict[str, nn.Module]
    params: list[nn.Parameter]
    flops_per_token: float | None = None  # counted on this process's first micro-batch
    compilation: Compilation | None = None  # compile: true

    @property
    def world(self) -> int:
        return self.accelerator.num_processes


@dataclass
class _Clock:
    """Training time across resumptions: the state's seconds (up to its checkpoint) plus this process's since."""

    started: float = field(default_factory=time.perf_counter)

    def elapsed(self, state: TrainingState) -> float:
        return state.seconds + time.perf_counter() - self.started

    def bank(self, state: TrainingState) -> None:
        """Add the time since the last bank to the state, as a checkpoint is about to save it."""
        state.seconds = self.elapsed(state)
        self.started = time.perf_counter()


def _start(
    config: TrainConfig,
    model: nn.Module,
    trainable: dict[str, nn.Module],
    kind: str,
    loss_fn: LossFn,
    extra: dict[str, nn.Module] | None,
    output_dir: Path,
) -> _Session:
    """The accelerator, the seeded RNGs, and the model and optimiser prepared for it, only ``trainable`` trained."""
    accelerator = _accelerator(config, output_dir)
    set_seed(config.seed)
    micro = config.batch_size // config.gradient_accumulation
    if micro % accelerator.num_processes:
        raise XLTError(
            f"batch_size/gradient_accumulation = {micro} is not divisible by {accelerator.num_processes} processes"
        )
    params = [p for m in trainable.values() for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = _optimizer(config, trainable, kind, params)
    scheduler = linear_schedule(optimizer, config.steps, config.warmup_steps)
    wrapped, optimizer = accelerator.prepare(TrainingModule(model, loss_fn, extra), optimizer)
    if accelerator.is_main_process and _trackers(config):
        accelerator.init_trackers("xlt")
    compilation = None
    if config.compile:  # checked on the machine that trains (a config may be made elsewhere)
        check_compiler(accelerator.device)
        compilation = Compilation(compiled_modules(model))
    return _Session(config, accelerator, wrapped, optimizer, scheduler, trainable, params, compilation=compilation)


def _accelerator(config: TrainConfig, output_dir: Path) -> Accelerator:
    # Accelerate keeps its state per process and refuses a second Accelerator with another precision (a bf16
    # run after an fp32 one in the same Python process): start the precision state afresh for every run (the
    # distributed state, PartialState, is kept).
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        mixed_precision="bf16" if config.precision == "bf16" else "no",
        gradient_accumulation_steps=config.gradient_accumulation,
        log_with=_trackers(config) or None,
        project_dir=str(output_dir),
        cpu=not torch.cuda.is_available(),
    )


def _optimizer(config: TrainConfig, trainable: dict[str, nn.Module], kind: str, params: list[nn.Parameter]) -> Any:
    """The kind's optimiser; a task head trained beside a representation takes the head learning rate."""
    head_params = [p for m in trainable.values() if getattr(m, "head", None) is not None for p in m.head.parameters()]
    return build_optimizer(
        params,
        kind,
        config.optimizer,
        config.lr,
        config.weight_decay,
        head_params,
        head_lr=HEAD_LR if config.head_lr is None else config.head_lr,
        defaults=config.defaults,
    )


def _resume(session: _Session, directory: Path, log: Callable[[str], None]) -> TrainingState:
    """A fresh state, or the checkpoint's with everything it saved restored."""
    if not has_checkpoint(directory):
        return TrainingState()
    state = load_checkpoint(directory, session.trainable, session.optimizer, session.scheduler)
    log(f"resuming from step {state.step} ({directory})")
    return state


def _progress_bar(session: _Session, step: int) -> Any:
    return tqdm(
        total=session.config.steps,
        initial=step,
        disable=not (session.config.progress and session.accelerator.is_main_process),
        desc="train",
        dynamic_ncols=True,
    )


def _step(session: _Session, stream: Iterator[Batch]) -> tuple[float, int]:
    """One optimiser step over gradient_accumulation micro-batches: its mean loss and its tokens, over all
    processes."""
    config, accelerator, wrapped = session.config, session.accelerator, session.wrapped
    total_loss = 0.0
    step_tokens = 0
    for _ in range(config.gradient_accumulation):
        batch = {k: v.to(accelerator.device) for k, v in next(stream).items()}
        with accelerator.accumulate(wrapped):
            if session.flops_per_token is None:  # the model's FLOPs per token, counted once (the count is slow)
                with counting() as flops:
                    loss, n = wrapped(batch)
                    accelerator.backward(loss)
                session.flops_per_token = flops() / max(int(n), 1)
            else:
                with session.compilation.active() if session.compilation is not None else nullcontext():
                    loss, n = wrapped(batch)
                accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm:
                accelerator.clip_grad_norm_(session.params, config.max_grad_norm)
            session.optimizer.step()
            session.optimizer.zero_grad(set_to_none=True)
        total_loss += float(loss.detach()) / config.gradient_accumulation
        step_tokens += int(n)
    if session.world > 1:
        total_loss, step_tokens = _over_processes(accelerator, total_loss, step_tokens)
    session.scheduler.step()
    return total_loss, step_tokens


def _over_processes(accelerator: Accelerator, loss: float, tokens: int) -> tuple[float, int]:
    """The mean loss and the token count over all processes: every process then takes the same decisions (a
    non-finite loss on one process must stop all of them, not leave the others waiting)."""
    stats = accelerator.reduce(
        torch.tensor([loss, float(tokens)], dtype=torch.float64, device=accelerator.device), "sum"
    )
    return float(stats[0]) / accelerator.num_processes, int(stats[1])


def _due(every: int, step: int, last: int | None = None) -> bool:
    """Whether something done every ``every`` steps (0: never) is due at ``step``; also at ``last``, if given."""
    return bool(every) and (step % every == 0 or step == last)


def _show_step(session: _Session, bar: Any, clock: _Clock, state: TrainingState, loss: float) -> None:
    """The step on the progress bar, and its loss and learning rate in the logs every ``log_every`` steps."""
    bar.update(1)
    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{state.tokens / max(clock.elapsed(state), 1e-9):.0f}")
    config = session.config
    if state.step % config.log_every == 0 or state.step == config.steps:
        session.accelerator.log({"train/loss": loss, "train/lr": session.scheduler.get_last_lr()[0]}, step=state.step)


def _evaluate(
    session: _Session, evaluate: Evaluate, metric: str, state: TrainingState, bar: Any, log: Callable[[str], None]
) -> None:
    """Score the current weights, keep them if they are the best so far, and stop early after too many
    evaluations without improvement."""
    scores = _scores(session.wrapped, evaluate, state.step)
    state.history.append(scores)
    session.accelerator.log({f"eval/{k}": v for k, v in scores.items() if k != "step"}, step=state.step)
    if metric not in scores:
        raise XLTError(f"evaluation returned {sorted(scores)}, not the metric {metric!r} to select on")
    _keep_if_best(session, state, metric, scores[metric])
    if session.accelerator.is_main_process:  # once, through the run's log, above the progress bar
        _log_above(
            bar, log, f"step {state.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "step")
        )
    patience = session.config.early_stopping_patience
    if patience and state.patience >= patience:
        state.stopped_early = True


def _keep_if_best(session: _Session, state: TrainingState, metric: str, value: float) -> None:
    if better(metric, value, state.best):
        state.best, state.best_step, state.patience = value, state.step, 0
        state.best_weights = trainable_weights(session.trainable)
    else:
        state.patience += 1


def _scores(wrapped: nn.Module, evaluate: Evaluate, step: int) -> dict[str, float]:
    wrapped.eval()
    with torch.no_grad():
        scores = evaluate()
    wrapped.train()
    return {**scores, "step": step}


def _log_above(bar: Any, log: Callable[[str], None], line: str) -> None:
    # On a terminal the bar is cleared and redrawn below the line; in a log file that redraw would repeat the
    # bar's last state around every line.
    redraw = not bar.disable and _on_terminal(bar)
    if redraw:
        bar.clear()
    log(line)
    if redraw:
        bar.refresh()


def _checkpoint(session: _Session, directory: Path, state: TrainingState, clock: _Clock) -> None:
    clock.bank(state)
    if session.accelerator.is_main_process:
        save_checkpoint(directory, state, session.trainable, session.optimizer, session.scheduler)
    session.accelerator.wait_for_everyone()


def _finish(session: _Session, state: TrainingState, clock: _Clock, used: Utilisation | None) -> TrainResult:
    """The run's result, the best weights restored, the trackers closed and the trained weights frozen again."""
    seconds = clock.elapsed(state)
    if state.best_weights is not None:
        load_trainable_weights(session.trainable, state.best_weights)
    # Not accelerator.end_training(): it also destroys the process group, which the caller still needs under
    # several processes (to save once, or to run a second training in the same launch).
    for tracker in session.accelerator.trackers:
        tracker.finish()
    for p in session.params:
        p.requires_grad_(False)
    best = next((h for h in state.history if h.get("step") == state.best_step), None)
    return TrainResult(
        state.step,
        state.best_step,
        best,
        list(state.history),
        seconds,
        state.tokens,
        state.stopped_early,
        utilisation=used.to_dict() if used is not None else None,
    )


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
