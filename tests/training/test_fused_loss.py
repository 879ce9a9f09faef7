"""The chunked cross-entropy fused with the LM head's projection equals the plain computation: loss and the
gradients of hidden states, weight and bias (float64 to 1e-12, float32 to float rounding), for any chunk size
and with ignored labels; and a model's ``logits=False`` loss equals its plain loss, gradients of a trained
representation included, on every text-to-text family."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core_helpers import TEXT_TO_TEXT, new_model, perturb
from tiny_models import FAMILY, VOCAB, batch
from xlt import BottleneckConfig, PromptConfig
from xlt.hosts.lm_loss import chunk_rows, linear_cross_entropy


def inputs(dtype: torch.dtype, rows: int = 23, dim: int = 16, vocab: int = 50, bias: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, dim, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    weight = torch.randn(vocab, dim, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    b = torch.randn(vocab, generator=g, dtype=torch.float64).to(dtype).requires_grad_() if bias else None
    targets = torch.randint(0, vocab, (rows,), generator=g)
    targets[::4] = -100
    return hidden, weight, b, targets


def plain(hidden, weight, bias, targets):
    logits = F.linear(hidden, weight, bias)
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), targets, ignore_index=-100)


def grads(loss, *tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("rows", [1, 3, 7, 1000])
@pytest.mark.parametrize("bias", [True, False])
def test_equal_to_the_plain_loss_in_float64(rows, bias):
    hidden, weight, b, targets = inputs(torch.float64, bias=bias)
    expected = plain(hidden, weight, b, targets)
    found = linear_cross_entropy(hidden, weight, targets, b, rows=rows)
    assert abs(found.item() - expected.item()) < 1e-12
    for a, e in zip(grads(found, hidden, weight, b), grads(expected, hidden, weight, b), strict=True):
        assert (a - e).abs().max() < 1e-12


def test_equal_to_float_rounding_in_float32():
    hidden, weight, b, targets = inputs(torch.float32, rows=64, dim=32, vocab=3000)
    expected = plain(hidden, weight, b, targets)
    found = linear_cross_entropy(hidden, weight, targets, b, rows=5)
    assert abs(found.item() - expected.item()) <= 1e-6 * abs(expected.item())
    for a, e in zip(grads(found, hidden, weight, b), grads(expected, hidden, weight, b), strict=True):
        assert (a - e).abs().max() <= 1e-5 * e.abs().max()


def test_leading_dimensions_a_backward_scale_and_a_frozen_weight():
    hidden, weight, _, targets = inputs(torch.float64, rows=24)
    weight.requires_grad_(False)
    shaped, labels = hidden.reshape(4, 6, -1), targets.reshape(4, 6)
    (3.0 * linear_cross_entropy(shaped, weight, labels, rows=4)).backward()
    fused = hidden.grad.clone()
    hidden.grad = None
    (3.0 * plain(hidden, weight, None, targets)).backward()
    assert (fused - hidden.grad).abs().max() < 1e-12
    assert weight.grad is None


def test_no_labelled_position_is_nan_as_the_plain_loss_is():
    hidden, weight, b, targets = inputs(torch.float64)
    targets[:] = -100
    assert torch.isnan(plain(hidden, weight, b, targets))
    assert torch.isnan(linear_cross_entropy(hidden, weight, targets, b))


def test_without_gradients_only_the_loss():
    hidden, weight, b, targets = inputs(torch.float64)
    with torch.no_grad():
        found = linear_cross_entropy(hidden, weight, targets, b, rows=2)
    assert not found.requires_grad
    assert abs(found.item() - plain(hidden, weight, b, targets).item()) < 1e-12


def test_chunk_rows_keep_a_chunk_under_its_budget():
    assert chunk_rows(250_112) == 268  # 256 MiB of float32 logits over mT5's vocabulary
    assert chunk_rows(32_000) == 2097
    assert chunk_rows(10**9) == 256  # never fewer rows than a chunk needs to read the head efficiently


def lm_batch(arch: str) -> dict[str, torch.Tensor]:
    ids, mask = batch([7, 5, 3], seed=3)
    if FAMILY[arch] == "encoder_decoder":
        labels = torch.randint(4, VOCAB, (3, 4), generator=torch.Generator().manual_seed(4))
        labels[1, 2:] = -100
    else:
        labels = ids.masked_fill(mask == 0, -100)
        labels[0, :3] = -100  # a source the loss skips, as a text-to-text batch has
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("arch", TEXT_TO_TEXT)
def test_a_models_loss_without_logits_equals_its_plain_loss(arch):
    torch.manual_seed(0)
    model = new_model(arch)
    model.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab"))
    model.add_task("t", BottleneckConfig(reduction_factor=4))
    perturb(model)
    rows = lm_batch(arch)
    trained = model.train_reps("t/bottleneck", "sk/prompt")
    plan = "sk/prompt+t/bottleneck"
    full = model(rows["input_ids"], rows["attention_mask"], plan=plan, labels=rows["labels"])
    fused = model(rows["input_ids"], rows["attention_mask"], plan=plan, labels=rows["labels"], logits=False)
    assert fused.logits is None and full.logits is not None
    assert abs(fused.loss.item() - full.loss.item()) <= 1e-6 * full.loss.item()
    for a, e in zip(torch.autograd.grad(fused.loss, trained), torch.autograd.grad(full.loss, trained), strict=True):
        assert (a - e).abs().max() <= 1e-5 * max(float(e.abs().max()), 1e-6)


def test_an_invertible_adapters_reverse_coupling_applies_before_the_fused_loss():
    """The LM head's pre-hook undoes a MAD-X invertible adapter's coupling: the fused loss sees what the head
    would; a head with a forward hook of its own is computed the plain way."""
    model = new_model("gpt2")
    model.add_language("cs", BottleneckConfig.madx(reduction_factor=4), name="cs/invertible")
    perturb(model)
    trained = model.train_reps("cs/invertible")
    rows = lm_batch("gpt2")
    args = (rows["input_ids"], rows["attention_mask"])
    full = model(*args, plan="cs/invertible", labels=rows["labels"])
    fused = model(*args, plan="cs/invertible", labels=rows["labels"], logits=False)
    assert fused.logits is None
    assert abs(fused.loss.item() - full.loss.item()) <= 1e-6 * full.loss.item()
    for a, e in zip(torch.autograd.grad(fused.loss, trained), torch.autograd.grad(full.loss, trained), strict=True):
        assert (a - e).abs().max() <= 1e-5 * max(float(e.abs().max()), 1e-6)
    handle = model.base.get_output_embeddings().register_forward_hook(lambda module, args, out: out * 2)
    try:
        doubled = model(*args, plan="cs/invertible", labels=rows["labels"], logits=False)
        assert doubled.logits is not None  # not fusable: the hook's logits are the model's
    finally:
        handle.remove()


def test_under_bf16_autocast_the_head_is_cast_once_and_gradients_keep_their_dtypes():
    hidden, weight, b, targets = inputs(torch.float32, rows=16, dim=32, vocab=300)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = plain(hidden, weight, b, targets)
        found = linear_cross_entropy(hidden, weight, targets, b, rows=5)
    assert found.dtype == torch.float32 and abs(found.item() - expected.item()) <= 2e-2 * expected.item()
    for a, e in zip(grads(found, hidden, weight, b), grads(expected, hidden, weight, b), strict=True):
        assert a.dtype == e.dtype == torch.float32
        assert (a - e).abs().max() <= 5e-2 * e.abs().max()
