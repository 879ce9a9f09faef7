"""Representation kinds: the registry, bottleneck and LoRA arithmetic, the invertible coupling, identity at a
zero init (the hooks change nothing else), and configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

from core_helpers import assert_rows_close, decoder_inputs, main_output, new_model, supports_invertible
from tiny_models import ARCHS, batch
from xlt import BottleneckConfig, LoRAConfig, RepConfig, XLTError, register_kind
from xlt.reps import get_kind, kinds
from xlt.reps.base import RepBody
from xlt.reps.bottleneck import BottleneckBlock, NiceCoupling, apply_stack
from xlt.reps.lora import LoRADelta
from xlt.reps.registry import _ALIASES, _KINDS


def test_registry():
    assert kinds() == ["bottleneck", "lora", "probe", "prompt"]
    assert get_kind("adapter").name == get_kind("seq_bn").name == "bottleneck"
    assert get_kind("soft_prompt").name == "prompt"
    with pytest.raises(XLTError, match="already registered"):
        register_kind("lora", LoRAConfig, get_kind("lora").build)


@dataclass
class ShiftConfig(RepConfig):
    kind: ClassVar[str] = "shift"
    size: int = 2


class Shift(RepBody):
    entry: ClassVar = "input"

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.ones(size, dim))

    def forward(self) -> torch.Tensor:
        return self.embedding


def test_a_new_kind_is_one_registration():
    register_kind("shift", ShiftConfig, lambda config, ctx: Shift(config.size, ctx.hidden_size))
    try:
        m = new_model("gpt2")
        rep = m.add_task("t", ShiftConfig(size=3))
        assert rep.name == "t/shift" and rep.entry == "input"
        ids, mask = batch([4, 2])
        out = m(ids, mask, plans=["t/shift", "base"]).logits
        assert float((out[0] - m(ids[:1], mask[:1]).logits[0]).abs().max()) > 1e-4
        assert_rows_close(out[1:, :2], m(ids[1:, :2], mask[1:, :2]).logits)
    finally:
        _KINDS.pop("shift", None)
        _ALIASES.pop("shift", None)


def test_apply_stack_is_adapterhub_seq_bn():
    torch.manual_seed(0)
    config = BottleneckConfig(reduction_factor=4)
    block = BottleneckBlock(8, config)
    ln = nn.LayerNorm(8)
    h, inp = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    expected = block.up(torch.relu(block.down(ln(h + inp)))) + h
    torch.testing.assert_close(apply_stack(h, inp, ln, [block]), expected)
    # Houlsby: the adapter reads the sub-layer output alone (no norm before), residual = its input
    houlsby = BottleneckBlock(8, BottleneckConfig.houlsby(reduction_factor=4))
    expected = houlsby.up(nn.functional.silu(houlsby.down(h))) + h
    torch.testing.assert_close(apply_stack(h, inp, ln, [houlsby]), expected)
    # a stack: the second adapter reads the first one's output
    torch.testing.assert_close(
        apply_stack(h, inp, ln, [block, houlsby]),
        apply_stack(apply_stack(h, inp, ln, [block]), inp, ln, [houlsby]),
    )
    # scaling multiplies the adapter's contribution
    scaled = BottleneckBlock(8, BottleneckConfig(reduction_factor=4, scaling=2.0))
    scaled.load_state_dict(block.state_dict())
    once = apply_stack(h, inp, None, [block]) - h
    torch.testing.assert_close(apply_stack(h, inp, None, [scaled]) - h, 2 * once)


def test_nice_coupling_is_invertible():
    torch.manual_seed(0)
    coupling = NiceCoupling(9, BottleneckConfig.madx())
    for p in coupling.parameters():
        nn.init.normal_(p, std=0.5)
    x = torch.randn(4, 5, 9)
    with torch.no_grad():
        y = coupling(x)
        back = coupling(y, reverse=True)
    assert float((y - x).abs().max()) > 1e-2
    torch.testing.assert_close(back, x, atol=1e-5, rtol=1e-5)


def test_lora_delta():
    torch.manual_seed(0)
    delta = LoRADelta(6, 4, LoRAConfig(rank=2, alpha=8))
    assert delta.scaling == 4.0 and torch.equal(delta.B, torch.zeros(4, 2))
    nn.init.normal_(delta.B)
    x = torch.randn(3, 6)
    torch.testing.assert_close(delta(x), 4.0 * x @ delta.A.T @ delta.B.T)


@pytest.mark.parametrize("arch", ARCHS)
def test_zero_contribution_is_identity(arch):
    """A bottleneck with a zero up-projection and LoRA at its init (B = 0) leave every family's output exactly
    as the base model's: the hooks around them change nothing else."""
    m = new_model(arch)
    m.add_language("sk", BottleneckConfig(reduction_factor=4, init_weights="zero_up"))
    m.add_language("de", BottleneckConfig.houlsby(reduction_factor=4, init_weights="zero_up"))
    m.add_task("t", LoRAConfig(rank=2))
    plan = ["sk/bottleneck", "de/bottleneck", "t/lora"]
    assert all(not b.up.weight.any() for b in m.rep("sk/bottleneck").body.blocks.values())
    ids, mask = batch([5, 3])
    kw = decoder_inputs(arch, 2)
    base = main_output(arch, m(ids, mask, plan="base", **kw))
    out = main_output(arch, m(ids, mask, plan=plan, **kw))
    torch.testing.assert_close(out, base, atol=1e-6, rtol=1e-6)
    # and the base model called directly (no route active) computes what it computes alone
    fresh = new_model(arch)
    hooked = m.base(input_ids=ids, attention_mask=mask, **kw)
    plain = fresh.base(input_ids=ids, attention_mask=mask, **kw)
    key = "last_hidden_state" if arch in ("bert", "xlm-roberta") else "logits"
    assert torch.equal(hooked[key], plain[key])


@pytest.mark.parametrize("arch", [a for a in ARCHS if supports_invertible(a)])
def test_invertible_adapter_acts(arch):
    m = new_model(arch)
    m.add_language("sk", BottleneckConfig.madx(reduction_factor=4, init_weights="zero_up"))
    rep = m.rep("sk/bottleneck")
    assert rep.body.invertible is not None
    ids, mask = batch([4])
    base = main_output(arch, m(ids, mask, plan="base"))
    with torch.no_grad():
        for p in rep.body.invertible.parameters():
            p.add_(0.3)
    assert float((main_output(arch, m(ids, mask, plan="sk/bottleneck")) - base).abs().max()) > 1e-3


def test_same_seed_same_init():
    a, b = new_model("t5"), new_model("t5")
    ra = a.add_task("t", BottleneckConfig(seed=5))
    rb = b.add_task("t", BottleneckConfig(seed=5))
    rc = b.add_task("u", BottleneckConfig(seed=6))
    sa, sb, sc = ra.state_dict(), rb.state_dict(), rc.state_dict()
    for k, v in sa.items():
        assert torch.equal(v, sb[k]), k
        if k.endswith("weight"):
            assert not torch.equal(v, sc[k]), k


@pytest.mark.parametrize(
    "make",
    [
        lambda: BottleneckConfig(reduction_factor=0),
        lambda: BottleneckConfig(mh_adapter=False, output_adapter=False),
        lambda: BottleneckConfig(non_linearity="nope"),
        lambda: BottleneckConfig(invertible="glow"),  # type: ignore[arg-type]
        lambda: LoRAConfig(rank=0),
        lambda: BottleneckConfig.from_dict({"reduction_factor": 4, "gating": True}),
    ],
)
def test_config_errors(make):
    with pytest.raises(XLTError):
        make()


def test_config_round_trip():
    for config in (BottleneckConfig.houlsby(), BottleneckConfig.madx(), LoRAConfig(4, target_modules=["q"])):
        assert type(config).from_dict(config.to_dict()) == config


@pytest.mark.parametrize("arch", ["t5", "bert", "gpt2", "llama"])
def test_stack_runs_language_first_in_every_block(arch):
    """MAD-X Stack: in every block the plan's first bottleneck runs first and the next reads its output."""
    m = new_model(arch)
    m.add_language("sk", BottleneckConfig(reduction_factor=4))
    m.add_task("nli", BottleneckConfig.houlsby(reduction_factor=4))
    calls = []
    handles = []
    for name in ("sk/bottleneck", "nli/bottleneck"):
        for key, block in m.rep(name).body.blocks.items():
            handles.append(block.register_forward_hook(lambda mod, a, o, n=name, k=key: calls.append((k, n))))
    try:
        ids, mask = batch([4, 3])
        plans = ["sk/bottleneck+nli/bottleneck", "nli/bottleneck+sk/bottleneck"]
        m(ids, mask, plans=plans, **decoder_inputs(arch, 2))
    finally:
        for h in handles:
            h.remove()
    ffn_sites = [k for k in m.rep("sk/bottleneck").body.blocks]
    for key in ffn_sites:
        order = [n for k, n in calls if k == key]
        # depth 0: row 0's sk and row 1's nli; depth 1: row 0's nli and row 1's sk
        assert order == ["sk/bottleneck", "nli/bottleneck", "nli/bottleneck", "sk/bottleneck"], key
    attn_sites = [k for k in m.rep("nli/bottleneck").body.blocks if k not in ffn_sites]
    assert attn_sites
    for key in attn_sites:  # only the Houlsby adapter sits after attention: once per depth it occupies
        assert [n for k, n in calls if k == key] == ["nli/bottleneck"] * 2


@pytest.mark.parametrize("arch", [a for a in ARCHS if supports_invertible(a)])
def test_invertible_adapter_wraps_the_embeddings(arch):
    """The coupling transforms the embedding layer's output, where AdapterHub couples it (BERT's embeddings
    module, GPT-2's embedding dropout, Llama's token embeddings); decoders apply its inverse right before the
    LM head (MAD-X)."""
    m = new_model(arch)
    m.add_language("sk", BottleneckConfig.madx(reduction_factor=4))
    coupling = m.rep("sk/bottleneck").body.invertible
    with torch.no_grad():
        for p in coupling.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    before, after = [], []
    site = m.host.embedding_output(m.base)
    first = site.register_forward_hook(lambda mod, a, o: before.append(o), prepend=True)  # before xlt's hook
    last = site.register_forward_hook(lambda mod, a, o: after.append(o))  # after it
    ids, mask = batch([4])
    try:
        out = m(ids, mask, plan="sk/bottleneck")
    finally:
        first.remove()
        last.remove()
    with torch.no_grad():
        assert len(before) == len(after) == 1
        torch.testing.assert_close(after[0], coupling(before[0]))
        assert float((after[0] - before[0]).abs().max()) > 1e-3
        if m.host.family == "decoder":
            head = m.base.get_output_embeddings()
            # outside a forward no route is active: the head is the plain linear layer
            torch.testing.assert_close(out.logits, head(coupling(out.hidden_states, reverse=True)))
            assert float((out.logits - head(out.hidden_states)).abs().max()) > 1e-3
