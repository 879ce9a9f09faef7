"""The input entry: soft prompts joined to the input embeddings, per row, with exact masks and positions.

Each row becomes ``[padding ; prompt_1 ; ... ; prompt_k ; input tokens]``: all padding moves to the left and
the real positions are contiguous, so relative-position models (T5) see the same distances as a row alone,
and explicit position ids (counted over real positions only) give absolute-position models (BERT, GPT-2,
Llama) the same positions as a row alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Assembled:
    inputs_embeds: torch.Tensor  # [batch, length, d]
    attention_mask: torch.Tensor  # [batch, length]
    position_ids: torch.Tensor | None  # [batch, length]; None: the model's own default
    input_index: torch.Tensor | None  # [batch, input_len] position of each input token; None: identity
    input_mask: torch.Tensor  # [batch, input_len], the caller's mask

    def to_input(self, hidden: torch.Tensor) -> torch.Tensor:
        """Select, from a [batch, length, ...] tensor, the positions of the caller's input tokens."""
        if self.input_index is None:
            return hidden
        index = self.input_index
        while index.dim() < hidden.dim():
            index = index.unsqueeze(-1)
        return hidden.gather(1, index.expand(*self.input_index.shape, *hidden.shape[2:]))


def positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(1) - 1).clamp_min(0).masked_fill(mask == 0, 0)


def assemble(
    embeds: torch.Tensor,
    mask: torch.Tensor,
    prompt_groups: list[tuple[torch.Tensor, torch.Tensor | None]],
) -> Assembled:
    """``prompt_groups``: (prompt vectors [p, d], rows or None for all rows) for every distinct prompt."""
    batch, _, dim = embeds.shape
    mask = mask.to(torch.long)
    if not prompt_groups and bool(mask.all()):
        return Assembled(embeds, mask, None, None, mask)
    # Padded rows are packed even without prompts: a right-padded row would generate after its padding, and a
    # left-padded one would get shifted absolute positions (GPT-2, BERT) without explicit position ids.
    width = max((vectors.shape[0] for vectors, _ in prompt_groups), default=0)
    block = embeds.new_zeros(batch, width, dim)
    block_mask = mask.new_zeros(batch, width)
    for vectors, rows in prompt_groups:
        n = vectors.shape[0]
        target = slice(None) if rows is None else rows
        block[target, width - n :] = vectors.to(embeds.dtype)
        block_mask[target, width - n :] = 1
    full = torch.cat([block, embeds], 1)
    full_mask = torch.cat([block_mask, mask], 1)
    order = torch.sort(full_mask, dim=1, stable=True).indices
    keep = int(full_mask.sum(1).max())
    drop = full.shape[1] - keep
    order = order[:, drop:]
    inputs_embeds = full.gather(1, order.unsqueeze(-1).expand(-1, -1, dim))
    attention_mask = full_mask.gather(1, order)
    inverse_full = torch.full((batch, full.shape[1]), 0, dtype=order.dtype, device=order.device)
    inverse_full.scatter_(1, order, torch.arange(keep, device=order.device).expand(batch, -1).contiguous())
    inverse = inverse_full[:, width:]
    return Assembled(inputs_embeds, attention_mask, positions(attention_mask), inverse, mask)
