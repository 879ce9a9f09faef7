"""Scaled-dot-product attention (T5's relative position bias passed as its additive mask) and the eager path give
the same loss and the same gradients of trained representations, prompts and padding included, on every family
whose transformers version offers both."""

from __future__ import annotations

import pytest
import torch

from core_helpers import TEXT_TO_TEXT, new_model, perturb
from tiny_models import FAMILY, VOCAB, batch
from xlt import BottleneckConfig, PromptConfig


def loss_and_grads(arch: str, implementation: str):
    model = new_model(arch)
    if not getattr(model.base, "_supports_sdpa", False) or not hasattr(model.base, "set_attn_implementation"):
        pytest.skip(f"{arch}: this transformers offers no choice of attention")
    try:
        model.base.set_attn_implementation(implementation)
    except (ValueError, ImportError) as exc:
        pytest.skip(f"{arch}: {exc}")
    model.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab"))
    model.add_task("t", BottleneckConfig(reduction_factor=4))
    perturb(model)
    trained = model.train_reps("sk/prompt", "t/bottleneck")
    ids, mask = batch([7, 4, 2], seed=3)
    if FAMILY[arch] == "encoder_decoder":
        labels = torch.randint(4, VOCAB, (3, 4), generator=torch.Generator().manual_seed(4))
    else:
        labels = ids.masked_fill(mask == 0, -100)
    out = model(ids, mask, plan="sk/prompt+t/bottleneck", labels=labels, logits=False)
    return out.loss.item(), torch.autograd.grad(out.loss, trained)


@pytest.mark.parametrize("arch", TEXT_TO_TEXT)
def test_sdpa_equals_eager_attention(arch):
    eager_loss, eager_grads = loss_and_grads(arch, "eager")
    sdpa_loss, sdpa_grads = loss_and_grads(arch, "sdpa")
    assert sdpa_loss == pytest.approx(eager_loss, rel=1e-5)
    for a, e in zip(sdpa_grads, eager_grads, strict=True):
        assert (a - e).abs().max() <= 1e-4 * max(float(e.abs().max()), 1e-6)
