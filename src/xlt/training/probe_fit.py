"""The probe fitted to convergence: the zero-shot baseline every configuration is compared with, trained as a
linear probe is meant to be, not for a step budget.

The frozen model reads the source language's training and dev examples once, in evaluation mode, and the
features its sequence head's linear layer would read (the pooled final hidden states, captured at that layer's
input) are kept. The head's linear layer is then the multinomial logistic regression of those features: full-batch
L-BFGS (strong-Wolfe line search) to convergence for each L2 penalty of the probe's ``l2_grid``, strongest first,
each fit starting from the previous one's solution; the penalty whose fit scores best on the dev set (the task's
own scorer and headline metric, on the dev features exactly as evaluation computes them) is kept, a tie going to
the lower dev log-loss, then the stronger penalty. Everything is deterministic: no sampling, no dropout,
float64 on fixed features.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from xlt.errors import XLTError
from xlt.plan import Plan
from xlt.reps.base import Representation
from xlt.reps.heads import Head
from xlt.reps.probe import ProbeConfig
from xlt.tasks.data import ClassificationData, Example
from xlt.tasks.head_inputs import HeadBatch
from xlt.training.loop import TrainResult, better

if TYPE_CHECKING:
    from xlt.training.task import TaskFormat, TaskRun

Log = Callable[[str], None]
FEATURE_BATCH = 64  # examples per forward of the frozen model, at least


def spelled_out(run: TaskRun) -> TaskRun:
    """A probe run with every option of its kind written out (defaults included): the run's record, and so the
    reuse of a finished run, then changes when the fit or its default does, and a run fitted another way is
    never served as this one."""
    if run.kind != "probe":
        return run
    return replace(run, rep=ProbeConfig.from_dict(run.rep).to_dict())


def fits_converged(rep: Representation) -> bool:
    """Whether ``rep`` is a probe whose head is fitted to convergence (a sequence head under ``fit="converged"``;
    token and span heads keep the step loop)."""
    head = rep.head
    return (
        isinstance(rep.config, ProbeConfig)
        and rep.config.fit == "converged"
        and isinstance(head, Head)
        and head.config.type == "sequence"
    )


@dataclass
class ProbeFitResult(TrainResult):
    """``TrainResult`` of a converged probe: ``steps`` counts L-BFGS iterations over the whole grid, ``history``
    holds one entry per L2 penalty (``step``: the iterations done once its fit ended), ``best`` the chosen one;
    ``fit`` the grid, dev scores, iterations, feature counts and timings."""

    fit: dict[str, Any] = field(default_factory=dict)


@dataclass
class Features:
    """The inputs of a head's linear layer, one row per head input row. ``targets``: class ids (training rows);
    ``chunks``: each evaluation batch with its examples and its rows here, to decode predictions as evaluation
    does; ``tokens``: the real tokens the frozen model read."""

    values: torch.Tensor
    targets: torch.Tensor | None
    chunks: list[tuple[HeadBatch, Sequence[Example], slice]]
    tokens: int


@dataclass
class LogisticFit:
    weight: torch.Tensor
    bias: torch.Tensor
    iterations: int
    loss: float
    gradient: float  # the largest gradient entry at the end
    converged: bool


@torch.no_grad()
def head_features(
    fmt: TaskFormat, rows: Sequence[Example], plan: Plan, head: Head, batch_size: int, *, train: bool
) -> Features:
    """What ``head``'s linear layer reads for ``rows`` under ``plan``, ``batch_size`` examples a batch, encoded as
    training (``train``) or evaluation encodes them; captured at that layer during the model's own forward, so
    they are the features evaluation scores with, not a re-implementation of the pooling."""
    model, seen = fmt.model, []
    hook = head.out.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach()))
    chunks: list[tuple[HeadBatch, Sequence[Example], slice]] = []
    targets: list[torch.Tensor] = []
    done = tokens = 0
    was_training = model.training
    model.eval()  # evaluation's features: no dropout in the base model or the head
    try:
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            batch = fmt.task.encode(fmt.tok, part, fmt.labels, fmt.max_length, train=train)
            model(batch.input_ids.to(model.device), batch.attention_mask.to(model.device), plan=plan)
            count = batch.input_ids.shape[0]
            chunks.append((batch, part, slice(done, done + count)))
            done, tokens = done + count, tokens + int(batch.attention_mask.sum())
            if batch.labels is not None:
                targets.append(batch.labels)
    finally:
        hook.remove()
        model.train(was_training)
    values = torch.cat(seen)
    if not bool(torch.isfinite(values).all()):
        raise XLTError("the frozen model's features hold NaN or inf; run the model in fp32 (a probe cannot fit them)")
    return Features(values, torch.cat(targets).to(values.device) if train else None, chunks, tokens)


def fit_logistic(
    features: Features, l2: float, start: tuple[torch.Tensor, torch.Tensor], config: ProbeConfig
) -> LogisticFit:
    """The weights and bias minimising the mean cross-entropy of ``features`` plus ``l2 / 2 * ||weight||^2``
    (float64, full batch), by L-BFGS from ``start`` until no gradient entry exceeds ``config.tolerance``, the
    loss stops changing or ``config.max_iterations`` is spent."""
    assert features.targets is not None
    x, y = features.values.double(), features.targets.long()
    # The bias is not penalised, so the problem on centred features is the same one (the mean folds into the
    # bias) and far better conditioned: e5's pooled states share a large common part, which costs L-BFGS ~5x
    # the iterations.
    shift = x.mean(0)
    x = x - shift
    weight = start[0].detach().double().clone().requires_grad_(True)
    bias = (start[1].detach().double() + weight.detach() @ shift).requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=config.max_iterations,
        max_eval=2 * config.max_iterations,  # line searches may take a few evaluations each
        tolerance_grad=config.tolerance,
        tolerance_change=1e-12,  # float64 losses move by ~1e-16: stop on the gradient, not on a stalled loss
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(F.linear(x, weight, bias), y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    with torch.enable_grad(), _threads_for(x, weight):
        optimizer.step(objective)  # type: ignore[no-untyped-call]
        loss = float(objective().detach())
    assert weight.grad is not None and bias.grad is not None
    gradient = max(float(weight.grad.abs().max()), float(bias.grad.abs().max()))
    state = optimizer.state[weight]
    iterations = int(state.get("n_iter", 0))
    # Budget spent with the gradient still above tolerance: not converged. L-BFGS may stop earlier on a loss
    # that no longer changes in float64, a gradient a hair above tolerance: that is the optimum, as far as
    # float64 can tell.
    spent = iterations >= config.max_iterations or int(state.get("func_evals", 0)) >= 2 * config.max_iterations
    weight = weight.detach()
    converged = gradient <= config.tolerance or not spent
    return LogisticFit(weight, bias.detach() - weight @ shift, iterations, loss, gradient, converged)


# Below this many multiply-adds per evaluation a CPU fit runs on one thread: on a small problem (the demo's is
# 3e6) intra-op threads only synchronise, ten times slower than one thread on a busy 2-core machine.
SMALL_FIT = 10**7


@contextmanager
def _threads_for(x: torch.Tensor, weight: torch.Tensor) -> Iterator[None]:
    threads = torch.get_num_threads()
    small = x.device.type == "cpu" and x.numel() * weight.shape[0] < SMALL_FIT
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(threads)


def cached_scores(
    features: Features, weight: torch.Tensor, bias: torch.Tensor, fmt: TaskFormat, language: str
) -> dict[str, float]:
    """The task's metrics of a head with ``weight`` and ``bias`` on cached evaluation features: each batch's
    logits as the head computes them (its dtype, its linear layer), decoded and scored as ``dev_score`` does."""
    predictions: list[Any] = []
    references: list[Any] = []
    for batch, rows, span in features.chunks:
        logits = F.linear(features.values[span], weight, bias)
        predictions += fmt.task.decode(logits, batch, rows, fmt.labels)
        references += [fmt.task.reference(e) for e in rows]
    return fmt.task.scores_in(predictions, references, language)


def fit_probe(
    run: TaskRun, fmt: TaskFormat, data: ClassificationData, name: str, rep: Representation, log: Log
) -> ProbeFitResult:
    """Fit ``rep``'s sequence head to convergence (see the module) and leave the chosen weights in it."""
    head, config = rep.head, rep.config
    assert isinstance(head, Head) and isinstance(config, ProbeConfig)
    plan = Plan.of(language=run.language_rep, task=name)
    # Large batches: the frozen model's per-batch cost dominates on CPU (e5: 97 s in batches of 16, 32 s in 128).
    batch_size = max(run.train.batch_size // run.train.gradient_accumulation, FEATURE_BATCH)
    started = time.perf_counter()
    train = head_features(fmt, data.train, plan, head, batch_size, train=True)
    dev = head_features(fmt, data.dev, plan, head, batch_size, train=False)
    feature_seconds = time.perf_counter() - started
    log(f"{name}: features of {len(train.values)} training and {len(dev.values)} dev rows ({feature_seconds:.1f} s)")
    started = time.perf_counter()
    history, fits = _grid(train, dev, fmt, run.source_language, head, config, name, log)
    fit_seconds = time.perf_counter() - started
    chosen = best_index(history, fmt.task.metric)
    with torch.no_grad():
        head.out.weight.copy_(fits[chosen].weight.to(head.out.weight.dtype))
        head.out.bias.copy_(fits[chosen].bias.to(head.out.bias.dtype))
    best = history[chosen]
    log(f"{name}: chose l2 {best['l2']:g} ({fmt.task.metric} {best[fmt.task.metric]:.4f} on dev)")
    timing = {"feature_seconds": feature_seconds, "fit_seconds": fit_seconds}
    return _result(config, history, chosen, (len(train.values), len(dev.values), train.tokens), timing, fmt)


def grid_order(grid: Sequence[float]) -> list[float]:
    """The penalties in fitting order: strongest first (each fit starts from the previous, less smooth, one)."""
    return sorted(set(grid), reverse=True)


def best_index(history: list[dict[str, Any]], metric: str) -> int:
    """The entry of the best dev score in ``history`` (in fitting order, strongest first). A tie on the
    headline metric (a small dev set ties often) goes to the lower dev log-loss where it is recorded, then to
    the stronger penalty."""
    best = 0
    for i, entry in enumerate(history):
        lower_loss = entry.get("dev_loss", math.inf) < history[best].get("dev_loss", math.inf)
        tie_won = entry[metric] == history[best][metric] and lower_loss
        if better(metric, entry[metric], history[best][metric]) or tie_won:
            best = i
    return best


def dev_log_loss(features: Features, weight: torch.Tensor, bias: torch.Tensor, labels: list[str], task: Any) -> float:
    """Mean cross-entropy of the head on cached dev features over the rows whose reference is one of
    ``labels`` (inf where none is)."""
    logits, targets = [], []
    for _, rows, span in features.chunks:
        chunk = F.linear(features.values[span].double(), weight.double(), bias.double())
        for row, example in zip(chunk, rows, strict=True):
            reference = task.reference(example)
            if isinstance(reference, str) and reference in labels:
                logits.append(row)
                targets.append(labels.index(reference))
    if not targets:
        return math.inf
    return float(F.cross_entropy(torch.stack(logits).double(), torch.tensor(targets)))


def _grid(
    train: Features,
    dev: Features,
    fmt: TaskFormat,
    language: str,
    head: Head,
    config: ProbeConfig,
    name: str,
    log: Log,
) -> tuple[list[dict[str, Any]], list[LogisticFit]]:
    """One fit per penalty, in ``grid_order``, each from the previous solution; each fit's dev scores and
    record (``step``: the L-BFGS iterations done once it ended), and the fits."""
    metric, layer = fmt.task.metric, head.out
    start = (torch.zeros_like(layer.weight), torch.zeros_like(layer.bias))
    history: list[dict[str, Any]] = []
    fits: list[LogisticFit] = []
    steps = 0
    for l2 in grid_order(config.l2_grid):
        fit = fit_logistic(train, l2, start, config)
        steps += fit.iterations
        scores = cached_scores(dev, fit.weight.to(layer.weight.dtype), fit.bias.to(layer.bias.dtype), fmt, language)
        record = {"l2": l2, "iterations": fit.iterations, "loss": fit.loss, "gradient": fit.gradient}
        if len(fit.weight) == len(fmt.labels) and fmt.task.closed_labels:  # one logit per label: a log-loss
            record["dev_loss"] = dev_log_loss(dev, fit.weight, fit.bias, fmt.labels, fmt.task)
        record["converged"] = fit.converged
        history.append({**scores, **record, "step": steps})
        fits.append(fit)
        log(f"{name}: l2 {l2:g}: {metric} {scores[metric]:.4f} on dev ({fit.iterations} L-BFGS iterations)")
        start = (fit.weight, fit.bias)
    return history, fits


def _result(
    config: ProbeConfig,
    history: list[dict[str, Any]],
    chosen: int,
    counts: tuple[int, int, int],
    timing: dict[str, float],
    fmt: TaskFormat,
) -> ProbeFitResult:
    """The run's record: the step loop's keys, filled with what the fit did, and the fit's own (``fit``)."""
    spent = config.max_iterations
    unconverged = [h["l2"] for h in history if not h["converged"]]
    warnings = []
    if unconverged:
        warnings.append(
            f"probe: L-BFGS spent its {spent} iterations before converging at l2 {unconverged} (raise max_iterations)"
        )
    train_rows, dev_rows, tokens = counts
    fit = {
        "method": "L-BFGS (strong Wolfe), full batch, float64",
        "objective": "mean cross-entropy + l2 / 2 * ||weight||^2",
        "grid": [h["l2"] for h in history],
        "dev_scores": [h[fmt.task.metric] for h in history],
        "metric": fmt.task.metric,
        "chosen_l2": history[chosen]["l2"],
        "lbfgs_iterations": [h["iterations"] for h in history],
        "train_features": train_rows,
        "dev_features": dev_rows,
        **timing,
        "max_iterations": config.max_iterations,
        "tolerance": config.tolerance,
    }
    seconds = sum(timing.values())
    best = history[chosen]
    return ProbeFitResult(history[-1]["step"], best["step"], best, history, seconds, tokens, False, warnings, fit=fit)
