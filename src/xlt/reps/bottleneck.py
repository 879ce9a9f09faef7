"""Bottleneck adapters with AdapterHub's semantics: Pfeiffer ``seq_bn``, Houlsby double, MAD-X invertible."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from transformers.activations import ACT2FN

from xlt.errors import XLTError
from xlt.reps.base import RepBody, RepConfig, check_range, check_seed
from xlt.reps.context import BuildContext
from xlt.reps.registry import OptimizerDefaults, register_kind


@dataclass
class BottleneckConfig(RepConfig):
    """A sequential bottleneck adapter, as AdapterHub's ``BnConfig``.

    Defaults are Pfeiffer ``seq_bn`` (the paper's adapters): one bottleneck after the feed-forward sub-layer of
    every block, reduction factor 16, ReLU, the adapter reading the sub-layer output plus its residual (after
    the block's own layer norm, where the block has one) and adding back the sub-layer output
    (``residual_before_ln``). ``BottleneckConfig.houlsby()`` gives the double adapter (after attention too,
    swish, reading the sub-layer output alone). ``invertible="nice"`` adds the MAD-X invertible
    adapter where AdapterHub couples it (the embedding layer's output: BERT's embeddings module, GPT-2's
    embedding dropout, Llama's token embeddings); only the plan's first invertible adapter applies, as in
    AdapterHub's Stack. It runs in reverse before an LM head (MAD-X; AdapterHub reverses only in flex heads).
    """

    kind: ClassVar[str] = "bottleneck"
    reduction_factor: float = 16
    non_linearity: str = "relu"
    original_ln_before: bool = True
    residual_before_ln: bool = True
    mh_adapter: bool = False
    output_adapter: bool = True
    scaling: float = 1.0
    dropout: float = 0.0
    init_weights: Literal["bert", "zero_up"] = "bert"
    invertible: Literal["nice"] | None = None
    invertible_reduction_factor: float = 2
    invertible_non_linearity: str = "relu"
    seed: int = 42

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reduction_factor <= 0:
            raise XLTError(f"reduction_factor must be > 0, got {self.reduction_factor}")
        check_range("bottleneck", "invertible_reduction_factor", self.invertible_reduction_factor, 0.0, low_open=True)
        check_range("bottleneck", "dropout", self.dropout, 0.0, 1.0)
        check_seed("bottleneck", self.seed)
        if not (self.mh_adapter or self.output_adapter):
            raise XLTError("a bottleneck needs mh_adapter=True or output_adapter=True (or both)")
        for name in (self.non_linearity, self.invertible_non_linearity):
            if name.lower() not in ACT2FN:
                raise XLTError(f"unknown non_linearity {name!r} (use one of {sorted(ACT2FN)})")
        if self.invertible not in (None, "nice"):
            raise XLTError(f"invertible must be None or 'nice', got {self.invertible!r}")

    @classmethod
    def pfeiffer(cls, **overrides: object) -> BottleneckConfig:
        return cls(**overrides)  # type: ignore[arg-type]

    @classmethod
    def houlsby(cls, **overrides: object) -> BottleneckConfig:
        values: dict[str, object] = {
            "mh_adapter": True,
            "output_adapter": True,
            "non_linearity": "swish",
            "original_ln_before": False,
            "residual_before_ln": True,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def madx(cls, **overrides: object) -> BottleneckConfig:
        values: dict[str, object] = {"invertible": "nice", "reduction_factor": 2}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _activation(name: str) -> nn.Module:
    return ACT2FN[name.lower()]


class BottleneckBlock(nn.Module):
    """down-project, non-linearity, up-project; the residual logic lives in :func:`apply_stack`."""

    def __init__(self, dim: int, config: BottleneckConfig) -> None:
        super().__init__()
        inner = max(1, int(dim // config.reduction_factor))  # as AdapterHub: never zero-width
        self.down = nn.Linear(dim, inner)
        self.act = _activation(config.non_linearity)
        self.up = nn.Linear(inner, dim)
        self.dropout = nn.Dropout(config.dropout)
        self.scaling = config.scaling
        self.non_linearity = config.non_linearity.lower()
        self.original_ln_before = config.original_ln_before
        self.residual_before_ln = config.residual_before_ln

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up(self.act(self.down(x.to(self.down.weight.dtype))))
        return self.dropout(up * self.scaling).to(x.dtype)


class NiceCoupling(nn.Module):
    """The MAD-X invertible adapter (NICE coupling), exactly invertible by construction."""

    def __init__(self, dim: int, config: BottleneckConfig) -> None:
        super().__init__()
        self.split1 = dim // 2
        split2 = dim - self.split1
        rf = config.invertible_reduction_factor
        act = config.invertible_non_linearity
        inner1, inner2 = max(1, int(split2 // rf)), max(1, int(self.split1 // rf))
        self.F = nn.Sequential(nn.Linear(split2, inner1), _activation(act), nn.Linear(inner1, self.split1))
        self.G = nn.Sequential(nn.Linear(self.split1, inner2), _activation(act), nn.Linear(inner2, split2))

    def forward(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(self.F[0].weight.dtype)
        x1, x2 = x[..., : self.split1], x[..., self.split1 :]
        if not reverse:
            y1 = x1 + self.F(x2)
            y2 = x2 + self.G(y1)
        else:
            y2 = x2 - self.G(x1)
            y1 = x1 - self.F(y2)
        return torch.cat((y1, y2), -1).to(dtype)


class Bottleneck(RepBody):
    entry: ClassVar = "blocks"

    def __init__(self, blocks: dict[str, BottleneckBlock], invertible: NiceCoupling | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleDict(blocks)
        self.invertible = invertible


def gather_signature(block: BottleneckBlock) -> tuple[Any, ...] | None:
    """Blocks of one signature can run as one gathered product; None: this one runs alone (its dropout)."""
    if block.dropout.p > 0 and block.training:
        return None
    weights = (block.down.weight.shape, block.up.weight.shape, block.down.weight.dtype)
    return (*weights, block.non_linearity, block.scaling, block.original_ln_before, block.residual_before_ln)


def _entry(
    h: torch.Tensor, inp: torch.Tensor, layer_norm: nn.Module | None, block: BottleneckBlock
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a block reads, and the residual it adds back to."""
    x = h
    if block.original_ln_before:
        x = h + inp
        if layer_norm is not None:
            x = layer_norm(x)
    return x, (h if block.residual_before_ln else x)


def gathered_block(
    h: torch.Tensor, inp: torch.Tensor, layer_norm: nn.Module | None, blocks: list[BottleneckBlock], which: torch.Tensor
) -> torch.Tensor:
    """Row ``i`` of ``h`` (rows, tokens, dim) through ``blocks[which[i]]`` (all of one signature), as
    :func:`apply_stack` with that one block, in two batched products."""
    first = blocks[0]
    x, residual = _entry(h, inp, layer_norm, first)
    dtype = first.down.weight.dtype
    down_w = torch.stack([b.down.weight for b in blocks])[which]  # (rows, inner, dim)
    down_b = torch.stack([b.down.bias for b in blocks])[which].unsqueeze(1)
    up_w = torch.stack([b.up.weight for b in blocks])[which]  # (rows, dim, inner)
    up_b = torch.stack([b.up.bias for b in blocks])[which].unsqueeze(1)
    z = first.act(torch.baddbmm(down_b, x.to(dtype), down_w.transpose(1, 2)))
    up = torch.baddbmm(up_b, z, up_w.transpose(1, 2))
    return (up * first.scaling).to(h.dtype) + residual


def apply_stack(
    h: torch.Tensor, inp: torch.Tensor, layer_norm: nn.Module | None, stack: list[BottleneckBlock]
) -> torch.Tensor:
    """AdapterHub's Stack on one sub-layer: returns the new sub-layer output, before the model's own
    residual add (and layer norm, for post-norm blocks), which the model still does itself."""
    for block in stack:
        x, residual = _entry(h, inp, layer_norm, block)
        h = block(x) + residual
    return h


def _init(module: nn.Module, config: BottleneckConfig) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)
    if config.init_weights == "zero_up" and isinstance(module, BottleneckBlock):
        nn.init.zeros_(module.up.weight)


def build_bottleneck(config: RepConfig, ctx: BuildContext) -> Bottleneck:
    assert isinstance(config, BottleneckConfig)
    devices = {p.device for p in ctx.base.parameters()}
    device = next(iter(devices)) if devices else torch.device("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        blocks: dict[str, BottleneckBlock] = {}
        for site in ctx.host.bottleneck_sites(ctx.base):
            if (site.where == "attn" and config.mh_adapter) or (site.where == "ffn" and config.output_adapter):
                block = BottleneckBlock(site.dim, config)
                _init(block, config)
                blocks[site.key] = block
        invertible = None
        if config.invertible:
            invertible = NiceCoupling(ctx.hidden_size, config)
            _init(invertible, config)
    if not blocks:
        raise XLTError(f"{ctx.host.name} exposes no block for this bottleneck config (check mh_adapter/output_adapter)")
    return Bottleneck(blocks, invertible).to(device)


# "paper": AdamW at lr 5e-5, no decay (Vykopal et al.); "fast": a higher rate for small budgets.
register_kind(
    "bottleneck",
    BottleneckConfig,
    build_bottleneck,
    aliases=("adapter", "seq_bn"),
    optimizer={"paper": OptimizerDefaults("adamw", 5e-5, 0.0), "fast": OptimizerDefaults("adamw", 1e-3, 0.0)},
)
