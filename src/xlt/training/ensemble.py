"""Languages without a corpus, at the output: a target is tested with the task representation under each related
language's representation in turn, and the predicted distributions are mixed per example with the weights that
make the mixture most confident.

This is an output-level form of the Entropy Minimized Ensemble of Adapters (EMEA; Wang, Tsvetkov, Ruder and
Neubig, "Efficient Test Time Adapter Ensembling for Low-resource Language Varieties", Findings of EMNLP 2021):
EMEA mixes the language adapters' outputs inside every layer and minimises the entropy of the prediction by
gradient steps on the mixing weights, one test input at a time; here the members' output distributions are mixed,
which needs one forward pass per member and works for any kind of language representation (prompts as well as
adapters). The weights start uniform and take ``STEPS`` gradient steps of size ``STEP_SIZE`` on their logits; no
label and no other test input is read, so each example's prediction depends on that example alone.
"""

from __future__ import annotations

import torch

STEPS = 10
STEP_SIZE = 10.0  # on the weights' logits; entropy gradients are small (bounded by log of the class count)


def entropy_minimised(probs: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix ``probs`` ([members, rows, *positions, classes], each a distribution over its last axis) per row.

    ``mask`` ([rows, *positions], 1 where a position is real) restricts a row's entropy to its real positions
    (tags of a sentence's tokens); rows without positions need none. Returns the mixture ([rows, *positions,
    classes]) and the weights ([rows, members])."""
    members, rows = probs.shape[0], probs.shape[1]
    with torch.inference_mode(False), torch.enable_grad():
        p = probs.detach().clone().float()
        weights_mask = None if mask is None else mask.detach().clone().float().reshape(rows, -1)
        logits = torch.zeros(rows, members, requires_grad=True)
        for _ in range(STEPS):
            mixture = _mix(p, logits.softmax(-1))
            entropy = -(mixture * mixture.clamp_min(1e-12).log()).sum(-1).reshape(rows, -1)
            if weights_mask is not None:
                per_row = (entropy * weights_mask).sum(-1) / weights_mask.sum(-1).clamp_min(1.0)
            else:
                per_row = entropy.mean(-1)
            (grad,) = torch.autograd.grad(per_row.sum(), logits)
            logits = (logits - STEP_SIZE * grad).detach().requires_grad_(True)
        weights = logits.detach().softmax(-1)
        return _mix(p, weights).detach(), weights


def _mix(probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    shape = (*weights.T.shape, *([1] * (probs.dim() - 2)))  # [members, rows, 1, ..., 1]
    return (probs * weights.T.reshape(shape)).sum(0)
