"""The capability matrix: architecture x kind x role x plan shape. Every supported cell runs forward (and
generate for text-to-text families) and a backward pass that gives non-zero gradients to the trained rep only;
every cell listed in UNSUPPORTED raises its clear error, and no other cell does."""

from __future__ import annotations

import itertools

import pytest
import torch

from core_helpers import decoder_inputs, main_output, new_model, no_compute, perturb
from tiny_models import ARCHS, FAMILY, batch
from xlt import BottleneckConfig, HeadConfig, LoRAConfig, PromptConfig, UnsupportedError

KINDS = {
    "prompt": lambda: PromptConfig(num_virtual_tokens=3, init="vocab"),
    "bottleneck": lambda: BottleneckConfig(reduction_factor=4),
    "houlsby": lambda: BottleneckConfig.houlsby(reduction_factor=4),
    "lora": lambda: LoRAConfig(rank=2),
    "bottleneck+invertible": lambda: BottleneckConfig.madx(reduction_factor=4),
}
ROLES = ["language", "task", "task-with-head"]
SHAPES = ["single", "language+task"]

# (family, feature) -> the error and what its message says. A cell's features: its kind, "head" for a task
# with a head, "generate" for generation.
UNSUPPORTED = {
    ("encoder_decoder", "bottleneck+invertible"): (UnsupportedError, "invertible"),
    ("encoder_decoder", "head"): (UnsupportedError, "take no head"),
    ("decoder", "head"): (UnsupportedError, "take no head"),
    ("encoder", "generate"): (UnsupportedError, "generation"),
}

CELLS = list(itertools.product(ARCHS, KINDS, ROLES, SHAPES))


def refusal(arch, kind, role):
    """The error a cell's rep must raise when created, or None."""
    family = FAMILY[arch]
    for feature in (kind, "head" if role == "task-with-head" else None):
        if (family, feature) in UNSUPPORTED:
            return UNSUPPORTED[family, feature]
    return None


class Bank:
    """One model per family; reps are created the first time a cell needs them."""

    def __init__(self, arch):
        self.arch = arch
        self.model = new_model(arch)

    def rep(self, kind, role, prefix=""):
        name = f"{prefix}{role}-{kind.replace('+', '-')}/rep"
        if name not in self.model.reps:
            head = HeadConfig(num_labels=3, dropout=0.0) if role == "task-with-head" else None
            if role == "language":
                self.model.add_language("sk", KINDS[kind](), name=name)
            else:
                self.model.add_task("nli", KINDS[kind](), head=head, name=name)
            perturb(self.model, name)
        return name


@pytest.fixture(scope="module")
def banks():
    return {arch: Bank(arch) for arch in ARCHS}


def plan_of(bank, kind, role, shape):
    rep = bank.rep(kind, role)
    if shape == "single":
        return rep, [rep]
    # The partner is of the same kind, except that a plan holds at most one invertible adapter.
    partner = "bottleneck" if kind == "bottleneck+invertible" else kind
    if role == "language":  # the cell's language rep, then a task rep
        return rep, [rep, bank.rep(partner, "task", prefix="partner-")]
    return rep, [bank.rep(partner, "language", prefix="partner-"), rep]


def loss_of(arch, m, ids, mask, plan, has_head):
    if FAMILY[arch] == "encoder":
        out = m(ids, mask, plan=plan, labels=torch.tensor([2, 0]) if has_head else None)
        return out, (out.loss if has_head else out.hidden_states.pow(2).mean())
    labels = ids[:, :3] if FAMILY[arch] == "encoder_decoder" else ids.masked_fill(mask == 0, -100)
    out = m(ids, mask, plan=plan, labels=labels)
    return out, out.loss


@pytest.mark.parametrize(("arch", "kind", "role", "shape"), CELLS)
def test_cell(banks, arch, kind, role, shape):
    bank = banks[arch]
    m = bank.model
    expected = refusal(arch, kind, role)
    if expected is not None:
        error, message = expected
        before = set(m.reps)
        with no_compute(m), pytest.raises(error, match=message):
            plan_of(bank, kind, role, shape)
        assert set(m.reps) == before
        return
    trained, plan = plan_of(bank, kind, role, shape)
    has_head = role == "task-with-head"
    ids, mask = batch([5, 3])

    # forward, and the rep is not a no-op
    with torch.no_grad():
        result = m(ids, mask, plan=plan, **decoder_inputs(arch, 2))
        out = result.logits if has_head else main_output(arch, result)
        without = [name for name in plan if name != trained]
        other = main_output(arch, m(ids, mask, plan=without, **decoder_inputs(arch, 2)))
        if has_head:  # the head alone, on what the plan computes without the rep's body
            other = m.rep(trained).head(other, mask)
        assert float((out - other).abs().max()) > 1e-5
    assert torch.isfinite(out).all()

    # generation
    if FAMILY[arch] == "encoder":
        error, message = UNSUPPORTED["encoder", "generate"]
        with no_compute(m), pytest.raises(error, match=message):
            m.generate(ids, mask, plan=[n for n in plan if m.rep(n).head is None], max_new_tokens=2)
    else:
        sequences = m.generate(ids, mask, plan=plan, max_new_tokens=2, do_sample=False)
        assert sequences.shape[0] == 2 and sequences.shape[1] >= 2

    # backward: gradients reach every tensor of the trained rep and nothing else
    params = m.train_reps(trained)
    try:
        _, loss = loss_of(arch, m, ids, mask, plan, has_head)
        loss.backward()
        for name, p in m.named_parameters():
            if name.startswith(f"reps.{trained}."):
                assert p.grad is not None and bool(p.grad.abs().sum() > 0), f"{name} got no gradient"
            else:
                assert p.grad is None, f"{name} is frozen but got a gradient"
    finally:
        for p in params:
            p.grad = None
        m.train_reps()


def test_unsupported_table_is_complete(banks):
    """Every (family, feature) pair the table names occurs in the matrix, so none of its entries is dead."""
    features = {(FAMILY[a], k) for a, k, _, _ in CELLS} | {(FAMILY[a], "head") for a in ARCHS}
    features |= {(FAMILY[a], "generate") for a in ARCHS}
    assert set(UNSUPPORTED) <= features
