"""Invariant 3, frozen is frozen: only the reps being trained get gradients; after optimizer steps the base
model and every other rep are bit-identical, and the trained rep has moved."""

from __future__ import annotations

import pytest
import torch

from core_helpers import new_model, perturb
from tiny_models import ARCHS, FAMILY, batch
from xlt import BottleneckConfig, HeadConfig, LoRAConfig, PromptConfig, XLTError

TRAINED = ["sk/prompt", "de/bottleneck", "nli/prompt", "nli/bottleneck", "t/lora", "head"]


def build(arch):
    m = new_model(arch)
    m.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab"))
    m.add_language("de", BottleneckConfig(reduction_factor=4))
    m.add_task("nli", PromptConfig(num_virtual_tokens=2, init="vocab"))
    m.add_task("nli", BottleneckConfig.houlsby(reduction_factor=4))
    m.add_task("t", LoRAConfig(rank=2))
    if FAMILY[arch] == "encoder":
        m.add_task("cls", BottleneckConfig(reduction_factor=4), head=HeadConfig("sequence", num_labels=3))
    perturb(m)
    return m


def plans_for(arch):
    """Row 0 runs everything; row 1 a plan without most reps (routed training must not leak into it)."""
    full = "sk/prompt+de/bottleneck+nli/prompt+nli/bottleneck+t/lora"
    other = "de/bottleneck"
    if FAMILY[arch] == "encoder":
        return [full + "+cls/bottleneck", "cls/bottleneck"]
    return [full, other]


def loss_of(m, arch, ids, mask, plans):
    if FAMILY[arch] == "encoder":
        return m(ids, mask, plans=plans, labels=torch.tensor([2, 0])).loss
    if FAMILY[arch] == "encoder_decoder":
        return m(ids, mask, plans=plans, labels=ids[:, :3]).loss
    return m(ids, mask, plans=plans, labels=ids.masked_fill(mask == 0, -100)).loss


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


CASES = [(a, t) for a in ARCHS for t in TRAINED if t != "head" or FAMILY[a] == "encoder"]  # heads: encoders


@pytest.mark.parametrize(("arch", "trained"), CASES)
def test_only_the_trained_rep_moves(arch, trained):
    if trained == "head":
        trained = "cls/bottleneck"
    m = build(arch)
    base_before = snapshot(m.base)
    reps_before = {name: snapshot(rep) for name, rep in m.reps.items()}
    params = m.train_reps(trained)
    assert {id(p) for p in params} == {id(p) for p in m.rep(trained).parameters()}
    assert {id(p) for p in m.trainable_parameters()} == {id(p) for p in params}
    m.train()
    opt = torch.optim.AdamW(params, lr=1e-2)
    ids, mask = batch([6, 4])
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        loss = loss_of(m, arch, ids, mask, plans_for(arch))
        loss.backward()
        for name, p in m.named_parameters():
            if name.startswith(f"reps.{trained}."):
                assert p.grad is not None, f"{name} got no gradient"
            else:
                assert p.grad is None, f"frozen {name} got a gradient"
        assert all(bool(p.grad.abs().sum() > 0) for p in params)
        opt.step()
    for key, value in m.base.state_dict().items():
        assert torch.equal(value, base_before[key]), f"base weight {key} changed"
    for name, rep in m.reps.items():
        after = rep.state_dict()
        if name == trained:
            for key, value in after.items():
                assert not torch.equal(value, reps_before[name][key]), f"trained {name}.{key} did not move"
        else:
            for key, value in after.items():
                assert torch.equal(value, reps_before[name][key]), f"frozen rep {name}.{key} changed"


def test_train_reps_switches_and_checks_names():
    m = build("bert")

    def trainable():
        return {n for n, r in m.reps.items() if any(p.requires_grad for p in r.parameters())}

    m.train_reps("sk/prompt", "t/lora")
    assert trainable() == {"sk/prompt", "t/lora"}
    m.train_reps("nli/prompt")
    assert trainable() == {"nli/prompt"}
    assert not any(p.requires_grad for p in m.base.parameters())
    with pytest.raises(XLTError, match="no rep 'xx/prompt'"):
        m.train_reps("xx/prompt")
    assert m.train_reps() == [] and m.trainable_parameters() == []


def test_new_and_loaded_reps_start_frozen(tmp_path):
    m = build("gpt2")
    assert m.trainable_parameters() == []
    m.train_reps("t/lora")
    m.save_rep("t/lora", tmp_path / "lora")
    m.remove("t/lora")
    rep = m.load_rep(tmp_path / "lora")
    assert not any(p.requires_grad for p in rep.parameters())
    assert not any(p.requires_grad for p in m.base.parameters())
