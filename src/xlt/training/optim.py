"""Optimisers and schedules; each kind's defaults per preset come from its registration (all overridable)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR
from transformers.optimization import Adafactor

from xlt.errors import XLTError
from xlt.reps.registry import OptimizerDefaults, check_preset, get_kind

OptimizerName = Literal["auto", "adamw", "adafactor"]


Defaults = Literal["fast", "paper"]

# The LM head of an encoder that ships none (not a representation kind): AdamW, as the adapters.
LM_HEAD = {"paper": OptimizerDefaults("adamw", 5e-5, 0.0), "fast": OptimizerDefaults("adamw", 1e-3, 0.0)}


def defaults_for(kind: str, table: Defaults = "fast") -> OptimizerDefaults:
    """A kind's optimiser defaults as its registration declares them (``lm_head``: the LM head's)."""
    if kind == "lm_head":
        return LM_HEAD[check_preset(table)]
    return get_kind(kind).optimizer_defaults(table)


def _settings(
    kind: str, name: OptimizerName, lr: float | None, weight_decay: float | None, defaults: Defaults
) -> tuple[str, float, float]:
    """The run's optimiser, learning rate and weight decay, each from the kind's defaults where not given."""
    check_preset(defaults)
    if name != "auto" and lr is not None and kind != "lm_head" and defaults not in get_kind(kind).optimizer:
        return name, lr, 0.0 if weight_decay is None else weight_decay  # a kind that registers no defaults
    chosen = defaults_for(kind, defaults)
    return (
        chosen.optimizer if name == "auto" else name,
        chosen.lr if lr is None else lr,
        chosen.weight_decay if weight_decay is None else weight_decay,
    )


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
    optimizer, lr, weight_decay = _settings(kind, name, lr, weight_decay, defaults)
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
