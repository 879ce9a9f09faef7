"""One mean pooling for heads and e5 embeddings, bit for bit what e5 computed on its own before."""

from __future__ import annotations

import pytest
import torch

import xlt.e5
from xlt.reps.heads import mean_pool, pool


def e5_mean_pool_as_it_was(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    # xlt.e5's own formula before it used the heads' one: the reference the shared one must equal exactly
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _batch(dtype: torch.dtype, mask_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    hidden = (torch.randn(5, 37, 24, generator=generator) * 10).to(dtype)
    lengths = torch.tensor([37, 1, 20, 0, 36])  # full, one token, partial, none, all but one
    mask = (torch.arange(37)[None, :] < lengths[:, None]).to(mask_dtype)
    mask[2] = mask[2].flip(0)  # a left-padded row
    return hidden, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mask_dtype", [torch.long, torch.bool, torch.float32])
def test_mean_pool_is_bit_identical_to_e5s_former_formula(dtype, mask_dtype):
    hidden, mask = _batch(dtype, mask_dtype)
    assert torch.equal(mean_pool(hidden, mask), e5_mean_pool_as_it_was(hidden, mask))
    assert torch.equal(pool(hidden, mask, "mean"), mean_pool(hidden, mask))


def test_e5_offers_the_same_function_under_its_documented_signature():
    assert xlt.e5.mean_pool is mean_pool
    hidden, mask = _batch(torch.float32, torch.long)
    assert torch.equal(xlt.e5.mean_pool(hidden=hidden, attention_mask=mask), e5_mean_pool_as_it_was(hidden, mask))


def test_a_row_without_tokens_pools_to_zero():
    hidden, mask = _batch(torch.float32, torch.long)
    assert torch.equal(mean_pool(hidden, mask)[3], torch.zeros(24))
