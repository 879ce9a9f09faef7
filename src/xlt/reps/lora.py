"""LoRA: low-rank deltas added to the outputs of chosen linear layers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from xlt.errors import XLTError
from xlt.reps.base import RepBody, RepConfig, check_range, check_seed
from xlt.reps.context import BuildContext
from xlt.reps.registry import OptimizerDefaults, register_kind


@dataclass
class LoRAConfig(RepConfig):
    """Low-rank adaptation (Hu et al. 2021): ``y += (alpha / rank) * B(A(dropout(x)))``.

    ``target_modules`` are matched against the last component of each linear's name (as PEFT does); empty
    means the host's default (the attention query and value projections).
    """

    kind: ClassVar[str] = "lora"
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=list)
    seed: int = 42

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise XLTError(f"LoRA rank must be >= 1, got {self.rank}")
        check_range("lora", "dropout", self.dropout, 0.0, 1.0)
        check_seed("lora", self.seed)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


class LoRADelta(nn.Module):
    def __init__(self, in_features: int, out_features: int, config: LoRAConfig) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(config.rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, config.rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.dropout = nn.Dropout(config.dropout)
        self.scaling = config.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x.to(self.A.dtype))
        return ((x @ self.A.T) @ self.B.T) * self.scaling


def gather_signature(delta: LoRADelta) -> tuple[Any, ...] | None:
    """Deltas of one signature can run as one gathered product; None: this one runs alone (its dropout)."""
    if delta.dropout.p > 0 and delta.training:
        return None
    return (delta.A.shape, delta.B.shape, delta.A.dtype)


def gathered_delta(deltas: Sequence[LoRADelta], x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Row ``i`` of ``x`` (rows, tokens, in) through ``deltas[which[i]]``, all rows in two batched products.

    One product per representation costs a handful of small kernels each; on a GPU with many languages in
    one batch those launches, not the arithmetic, set the time.
    """
    a = torch.stack([d.A for d in deltas])[which]  # (rows, rank, in)
    b = torch.stack([d.B for d in deltas])[which]  # (rows, out, rank)
    out = torch.bmm(torch.bmm(x.to(a.dtype), a.transpose(1, 2)), b.transpose(1, 2))
    scalings = {d.scaling for d in deltas}
    if len(scalings) == 1:
        return out * scalings.pop()
    return out * x.new_tensor([d.scaling for d in deltas], dtype=a.dtype)[which].view(-1, 1, 1)


class LoRA(RepBody):
    entry: ClassVar = "linears"

    def __init__(self, deltas: dict[str, LoRADelta]) -> None:
        super().__init__()
        self.deltas = nn.ModuleDict(deltas)


def build_lora(config: RepConfig, ctx: BuildContext) -> LoRA:
    assert isinstance(config, LoRAConfig)
    targets = ctx.host.lora_targets(ctx.base, config.target_modules)
    if not targets:
        raise XLTError(
            f"LoRA target_modules {config.target_modules} match no linear layer of this {ctx.host.name} model "
            f"(choose among: {', '.join(ctx.host.linear_names(ctx.base))})"
        )
    device = next(ctx.base.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        deltas = {t.key: LoRADelta(t.in_features, t.out_features, config) for t in targets}
    return LoRA(deltas).to(device)


register_kind(
    "lora",
    LoRAConfig,
    build_lora,
    optimizer={"paper": OptimizerDefaults("adamw", 5e-5, 0.0), "fast": OptimizerDefaults("adamw", 1e-3, 0.0)},
)
