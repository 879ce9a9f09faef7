"""Task heads for encoder models. A head reads the input's own positions, never a virtual token."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from xlt.errors import XLTError
from xlt.reps.base import check_fields, check_range, from_options

HeadType = Literal["sequence", "token", "span"]


@dataclass
class HeadConfig:
    """``sequence``: one label per input (pooled); ``token``: one label per token; ``span``: start/end logits
    for extractive QA. ``pooling`` (sequence heads): ``mean`` over the input's tokens or its first token
    (``cls``)."""

    type: HeadType = "sequence"
    num_labels: int = 2
    labels: list[str] | None = None
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.type not in ("sequence", "token", "span"):
            raise XLTError(f"head type must be 'sequence', 'token' or 'span', got {self.type!r}")
        if self.pooling not in ("mean", "cls"):
            raise XLTError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        check_fields(self, "head")
        check_range("head", "dropout", self.dropout, 0.0, 1.0)
        if self.type == "span":
            self.num_labels = 2
        if self.labels is not None:
            self.labels = list(self.labels)
            if len(self.labels) != self.num_labels:
                if self.num_labels == 2 and self.type != "span":
                    self.num_labels = len(self.labels)
                else:
                    raise XLTError(f"head has {len(self.labels)} labels but num_labels={self.num_labels}")
        if self.num_labels < 1:
            raise XLTError(f"num_labels must be >= 1, got {self.num_labels}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadConfig:
        return from_options(cls, data, "head")

    @property
    def signature(self) -> tuple[str, int]:
        return (self.type, self.num_labels)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of ``hidden`` [B, T, H] over the positions where ``attention_mask`` [B, T] is 1 (a row with none
    gives 0).

    xlt's one mean pooling: sequence heads pool with it, and e5 embeds with it (then L2-normalises)."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    if how == "cls":  # the first real token of each row (a left-padded row does not start at position 0)
        first = mask.long().argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first.to(hidden.device)]
    return mean_pool(hidden, mask)


class Head(nn.Module):
    def __init__(self, config: HeadConfig, hidden_size: int) -> None:
        super().__init__()
        self.config = config
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(hidden_size, config.num_labels)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``hidden``: [batch, input_len, d] aligned with the input tokens; ``mask``: the input's mask."""
        hidden = hidden.to(self.out.weight.dtype)
        if self.config.type == "sequence":
            return self.out(self.dropout(pool(hidden, mask, self.config.pooling)))
        return self.out(self.dropout(hidden))
