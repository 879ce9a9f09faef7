"""Cross-entropy over a large vocabulary, computed in row chunks fused with the LM head's projection.

The plain computation materialises the logits of every position ([tokens, vocab] in float32: 250k columns for
mT5, so 1 GB for 1,000 target tokens), then a log-softmax of the same size, and the same again in its
backward. Here each chunk of rows is projected, reduced to its loss and turned into its gradient at once:
``(softmax - onehot) / n`` times the head's weight, which is the whole backward of a cross-entropy through a
linear layer. The backward then only scales the stored gradient. Peak memory is a few tensors of one chunk's
logits (256 MiB of float32 each at most, or ``MIN_ROWS`` rows), the FLOPs are those of the plain forward and
backward (the projection and the gradient's product), and positions whose label is ignored are never
projected at all.

The result is the plain ``F.cross_entropy(F.linear(h, W, b).float(), t, ignore_index=-100)`` (float64 stays
float64): the same sum, in
the same order within a row, divided by the same count; its value and gradients agree with it to float
rounding (tested: float64 to 1e-12; float32 to 1e-6 relative for the loss, 1e-5 for gradients summed
over rows in another order).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xlt.batching import IGNORE_INDEX

# Bytes of float32 logits one chunk may hold, and the fewest rows a chunk takes. Every chunk reads the whole
# LM head (mT5's is 512 MB in fp32) twice, for its logits and its gradient: on a CPU that read, not the
# arithmetic, is the cost of small chunks (67-row chunks over mT5's vocabulary measured 16% slower than one
# chunk of 232 rows, 16-row chunks 75% slower), so a chunk is never smaller than a few hundred rows.
CHUNK_BYTES = 256 * 2**20
MIN_ROWS = 256


def chunk_rows(vocab: int, budget: int = CHUNK_BYTES) -> int:
    """Rows per chunk: as many as ``budget`` bytes of float32 logits hold, and at least ``MIN_ROWS``."""
    return max(MIN_ROWS, budget // (4 * vocab))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        rows: int,
        gradients: bool,
    ) -> torch.Tensor:
        count = targets.numel()  # every row here carries a label: ignored rows were dropped by the caller
        exact = torch.promote_types(weight.dtype, torch.float32)  # float32 at least, as the plain loss takes it
        total = torch.zeros((), dtype=exact, device=hidden.device)
        want_h, want_w, want_b = (gradients and bool(n) for n in ctx.needs_input_grad[:3])
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight, dtype=exact) if want_w else None
        grad_b = torch.zeros_like(bias, dtype=exact) if want_b and bias is not None else None
        dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)  # of the gradients
        kind = hidden.device.type
        if torch.is_autocast_enabled(kind):  # cast the head once, not twice per chunk (a frozen weight's cast
            low = torch.get_autocast_dtype(kind)  # is never cached by autocast)
            weight, bias = weight.to(low), bias.to(low) if bias is not None else None
        for start in range(0, hidden.shape[0], rows):
            h = hidden[start : start + rows]
            t = targets[start : start + rows]
            logits = F.linear(h, weight, bias).to(exact)
            # torch's softmax kernels, not exp and logsumexp: on a CPU, exp of the far tail of a 250k-way row
            # (denormal results) runs several times slower than the softmax kernels' own exponential.
            total -= torch.log_softmax(logits, dim=-1).gather(1, t[:, None]).sum()
            if grad_h is None and grad_w is None and grad_b is None:
                continue
            # d loss / d logits: (softmax - onehot) / count
            grad = torch.softmax(logits, dim=-1)
            del logits
            grad[torch.arange(t.shape[0], device=t.device), t] -= 1.0
            grad.div_(count)
            if grad_h is not None:
                grad_h[start : start + rows] = (grad.to(weight.dtype) @ weight).to(grad_h.dtype)
            if grad_w is not None:
                grad_w += (grad.T @ h.to(exact)).to(exact)
            if grad_b is not None:
                grad_b += grad.sum(0)
        ctx.save_for_backward(*(g for g in (grad_h, grad_w, grad_b) if g is not None))
        ctx.present = (grad_h is not None, grad_w is not None, grad_b is not None)
        ctx.dtypes = dtypes
        return total / count

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        saved = iter(ctx.saved_tensors)
        grads = [next(saved) if present else None for present in ctx.present]
        scaled = [
            None if g is None else (g * grad_output).to(dtype) for g, dtype in zip(grads, ctx.dtypes, strict=True)
        ]
        return scaled[0], scaled[1], scaled[2], None, None, None


def fusable(head: nn.Module) -> bool:
    """Whether the loss may bypass ``head``'s own forward: a plain linear layer with no forward hooks, no
    keyword pre-hooks and no forward of its own set on the instance (a dispatch wrapper). Its plain pre-hooks
    (the MAD-X invertible adapter's reverse coupling) are applied by ``head_input``."""
    return (
        isinstance(head, nn.Linear)
        and not head._forward_hooks
        and not getattr(head, "_forward_pre_hooks_with_kwargs", {})
        and "forward" not in head.__dict__
    )


def head_input(head: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """``hidden`` as ``head``'s forward would receive it: its forward pre-hooks applied in order."""
    args: tuple[Any, ...] = (hidden,)
    for hook in list(head._forward_pre_hooks.values()):
        result = hook(head, args)
        if result is not None:
            args = result if isinstance(result, tuple) else (result,)
    return args[0]


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    rows: int | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of ``F.linear(hidden, weight, bias)`` against ``targets`` (-100: ignored), without
    the full logits tensor. ``hidden``: [..., d]; ``targets``: the same leading shape; ``rows``: rows per chunk
    (default: ``chunk_rows`` of the vocabulary). No labelled position gives NaN, as the plain computation does."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    labels = targets.reshape(-1).to(flat.device)
    keep = labels != IGNORE_INDEX
    if not bool(keep.any()):
        return (flat.sum() * 0.0).float() / 0.0
    chosen = flat[keep] if not bool(keep.all()) else flat
    size = rows if rows is not None else chunk_rows(weight.shape[0])
    loss: torch.Tensor = _LinearCrossEntropy.apply(chosen, weight, bias, labels[keep], size, torch.is_grad_enabled())
    return loss
