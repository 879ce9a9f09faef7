"""Optimisers and schedules, with the paper's per-kind defaults (all overridable)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR
from transformers.optimization import Adafactor

from xlt.errors import XLTError

OptimizerName = Literal["auto", "adamw", "adafactor"]


@dataclass(frozen=True)
class OptimizerDefaults:
    optimizer: Literal["adamw", "adafactor"]
    lr: float
    weight_decay: float


Defaults = Literal["fast", "paper"]

# "paper": soft prompts with Adafactor (lr 0.5, weight decay 1e-5), adapters with AdamW (lr 5e-5, no decay), as
# Vykopal et al. "fast": xlt's default for small budgets (higher learning rates; prompts at 0.3, since at 0.5
# their row norms grow fastest). The probe (a task head alone on the frozen model, the zero-shot baseline of
# encoders) is a linear model: it takes a larger step.
KIND_DEFAULTS: dict[str, dict[str, OptimizerDefaults]] = {
    "paper": {
        "prompt": OptimizerDefaults("adafactor", 0.5, 1e-5),
        "bottleneck": OptimizerDefaults("adamw", 5e-5, 0.0),
        "lora": OptimizerDefaults("adamw", 5e-5, 0.0),
        "probe": OptimizerDefaults("adamw", 1e-2, 0.0),
    },
    "fast": {
        "prompt": OptimizerDefaults("adafactor", 0.3, 1e-5),
        "bottleneck": OptimizerDefaults("adamw", 1e-3, 0.0),
        "lora": OptimizerDefaults("adamw", 1e-3, 0.0),
        "probe": OptimizerDefaults("adamw", 1e-2, 0.0),
    },
}


def defaults_for(kind: str, table: Defaults = "fast") -> OptimizerDefaults:
    if table not in KIND_DEFAULTS:
        raise XLTError(f"unknown optimizer defaults {table!r} (use 'fast' or 'paper')")
    return KIND_DEFAULTS[table].get(kind, KIND_DEFAULTS[table]["bottleneck"])


HEAD_LR = 1e-3


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    kind: str,
    name: OptimizerName = "auto",
    lr: float | None = None,
    weight_decay: float | None = None,
    head_params: Iterable[torch.nn.Parameter] = (),
    head_lr: float = HEAD_LR,
    defaults: Defaults = "fast",
) -> Optimizer:
    """One optimiser for a representation; a task head, if any, is a second group at ``head_lr`` (a prompt's
    learning rate of 0.5 would wreck a linear head)."""
    chosen = defaults_for(kind, defaults)
    optimizer = chosen.optimizer if name == "auto" else name
    lr = chosen.lr if lr is None else lr
    weight_decay = chosen.weight_decay if weight_decay is None else weight_decay
    params = list(params)  # read twice below: a generator would leave the head group empty
    head_ids = {id(p) for p in head_params}
    body = [p for p in params if p.requires_grad and id(p) not in head_ids]
    head = [p for p in params if p.requires_grad and id(p) in head_ids] if head_ids else []
    if not body and not head:
        raise XLTError("nothing to train: the representation has no trainable parameters")
    groups: list[dict[str, object]] = [{"params": body}] if body else []
    if head:
        # A head beside a body learns at head_lr; a head alone (a probe) is the representation: it takes lr.
        groups.append({"params": head, "lr": head_lr if body else lr})
    if optimizer == "adafactor":
        # Fixed learning rate, no relative step or parameter scaling: the setting prompt tuning uses.
        return Adafactor(
            groups,
            lr=lr,
            weight_decay=weight_decay,
            scale_parameter=False,
            relative_step=False,
            warmup_init=False,
        )
    if optimizer == "adamw":
        return AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise XLTError(f"unknown optimizer {optimizer!r} (use 'auto', 'adamw' or 'adafactor')")


def linear_schedule(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0) -> LambdaLR:
    """Linear warm-up from 0, then linear decay to 0 at ``total_steps``."""
    if total_steps < 1:
        raise XLTError(f"steps must be >= 1, got {total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return LambdaLR(optimizer, factor)
