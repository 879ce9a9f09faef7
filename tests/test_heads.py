"""Invariant 5, heads read the input, not the prompt: pooling and token heads use the input's own positions
(its first token, or a mean over its tokens), never a virtual token. Heads live on encoders only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core_helpers import ENCODERS, assert_rows_close, max_diff, new_model, perturb
from tiny_models import batch
from xlt import BottleneckConfig, HeadConfig, LoRAConfig, PromptConfig
from xlt.model import head_loss

PROMPT = 3


@pytest.fixture(scope="module", params=ENCODERS)
def model(request):
    m = new_model(request.param)
    m.add_language("sk", PromptConfig(num_virtual_tokens=PROMPT, init="vocab"))
    m.add_task("mean", BottleneckConfig(reduction_factor=4), head=HeadConfig(num_labels=3, pooling="mean"))
    m.add_task("first", LoRAConfig(rank=2), head=HeadConfig(num_labels=3, pooling="cls"))
    m.add_task("tok", BottleneckConfig(reduction_factor=8), head=HeadConfig("token", num_labels=5))
    m.add_task("span", LoRAConfig(rank=2), head=HeadConfig("span"))
    perturb(m)
    return m.eval()


def manual_hidden(m, ids, mask, i, n, plan):
    """The full last layer of row ``i`` alone, virtual tokens included: [1, PROMPT + n, d]."""
    row, row_mask = ids[i : i + 1, :n], mask[i : i + 1, :n]
    route = m.route(1, plan=plan)
    with m.runtime.active(route):  # bottlenecks and LoRA in the blocks, as the plan says
        x = torch.cat([m.rep("sk/prompt").body.embedding[None], m.base.get_input_embeddings()(row)], 1)
        full = m.base(inputs_embeds=x, attention_mask=torch.cat([torch.ones(1, PROMPT), row_mask], 1).long())
    return full.last_hidden_state


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_sequence_heads_pool_the_input(model, pooling):
    m = model
    plan = f"sk/prompt+{pooling}/{'lora' if pooling == 'first' else 'bottleneck'}"
    head = m.rep(plan.split("+")[1]).head
    lengths = [5, 2, 4]
    ids, mask = batch(lengths)
    out = m(ids, mask, plan=plan)
    assert out.logits.shape == (3, 3)
    assert out.hidden_states.shape == (3, ids.shape[1], 32)
    with torch.no_grad():
        # from the output's own hidden states (the input's positions)
        if pooling == "first":
            pooled = out.hidden_states[:, 0]
        else:
            w = mask.unsqueeze(-1).float()
            pooled = (out.hidden_states * w).sum(1) / w.sum(1)
        assert_rows_close(out.logits, head.out(pooled), "head from hidden_states")
        for i, n in enumerate(lengths):
            full = manual_hidden(m, ids, mask, i, n, plan)
            assert_rows_close(out.hidden_states[i : i + 1, :n], full[:, PROMPT:], f"row {i} hidden states")
            inputs = full[:, PROMPT:]
            expected = head.out(inputs[:, 0] if pooling == "first" else inputs.mean(1))
            assert_rows_close(out.logits[i : i + 1], expected, f"row {i}")
            # what a head reading the prompt would give: clearly another value
            wrong = head.out(full[:, 0] if pooling == "first" else full.mean(1))
            assert max_diff(out.logits[i : i + 1], wrong) > 1e-4


def test_token_and_span_heads_return_input_positions(model):
    m = model
    lengths = [5, 2, 4]
    ids, mask = batch(lengths)
    for name, labels in (("tok/bottleneck", 5), ("span/lora", 2)):
        plan = f"sk/prompt+{name}"
        out = m(ids, mask, plan=plan)
        assert out.logits.shape == (3, ids.shape[1], labels)  # exactly input_len positions, no virtual token
        with torch.no_grad():
            assert_rows_close(out.logits, m.rep(name).head.out(out.hidden_states))
            for i, n in enumerate(lengths):
                full = manual_hidden(m, ids, mask, i, n, plan)
                assert_rows_close(out.logits[i : i + 1, :n], m.rep(name).head.out(full[:, PROMPT:]))


def test_first_token_of_a_left_padded_row(model):
    """'cls' pooling reads each row's first real token, wherever the caller's padding puts it."""
    m = model
    right_ids, right_mask = batch([5, 2])
    ids, mask = torch.zeros_like(right_ids), torch.zeros_like(right_mask)
    ids[0], mask[0] = right_ids[0], right_mask[0]
    ids[1, 3:], mask[1, 3:] = right_ids[1, :2], 1
    left = m(ids, mask, plan="sk/prompt+first/lora").logits
    right = m(right_ids, right_mask, plan="sk/prompt+first/lora").logits
    assert_rows_close(left, right)


def test_routed_heads_and_per_row_losses(model):
    m = model
    plans = ["sk/prompt+mean/bottleneck", "first/lora", "mean/bottleneck", "sk/prompt+first/lora"]
    lengths = [5, 3, 6, 2]
    ids, mask = batch(lengths)
    labels = torch.tensor([2, 0, 1, 2])
    out = m(ids, mask, plans=plans, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    for i, (plan, n) in enumerate(zip(plans, lengths, strict=True)):
        alone = m(ids[i : i + 1, :n], mask[i : i + 1, :n], plan=plan, labels=labels[i : i + 1])
        assert_rows_close(out.logits[i : i + 1], alone.logits, f"row {i}")
        torch.testing.assert_close(F.cross_entropy(out.logits[i : i + 1], labels[i : i + 1]), alone.loss)
    wrong = m(ids, mask, plan=plans[0]).logits
    for i in range(1, 4):
        assert max_diff(out.logits[i], wrong[i]) > 1e-4


def test_token_head_loss_ignores_padding(model):
    m = model
    ids, mask = batch([4, 2])
    labels = torch.tensor([[1, 2, 3, 4], [0, 1, -100, -100]])
    out = m(ids, mask, plan="sk/prompt+tok/bottleneck", labels=labels)
    expected = F.cross_entropy(out.logits[mask.bool()], labels[mask.bool()])
    torch.testing.assert_close(out.loss, expected)
    span = m(ids, mask, plan="span/lora", labels=torch.tensor([[0, 2], [1, 1]]))
    s, e = span.logits[..., 0], span.logits[..., 1]
    ref = (F.cross_entropy(s, torch.tensor([0, 1])) + F.cross_entropy(e, torch.tensor([2, 1]))) / 2
    torch.testing.assert_close(span.loss, ref)
    uniform = head_loss("sequence", torch.zeros(2, 3), torch.tensor([0, 1]))
    assert float(uniform) == pytest.approx(float(torch.log(torch.tensor(3.0))))


def test_head_dropout_acts_in_training_only():
    m = new_model("bert")
    m.add_task("cls", BottleneckConfig(), head=HeadConfig(num_labels=3, dropout=0.5))
    ids, mask = batch([6, 6])
    a = m(ids, mask, plan="cls/bottleneck").logits
    assert torch.equal(a, m(ids, mask, plan="cls/bottleneck").logits)
    m.train()
    torch.manual_seed(0)
    b = m(ids, mask, plan="cls/bottleneck").logits
    assert max_diff(a, b) > 0


def test_head_config():
    assert HeadConfig("span", num_labels=7).num_labels == 2
    assert HeadConfig(labels=["a", "b", "c"]).num_labels == 3
    config = HeadConfig("token", 4, pooling="cls")
    assert HeadConfig.from_dict(config.to_dict()) == config
    for bad in ({"type": "pair"}, {"num_labels": 0}, {"pooling": "max"}, {"num_labels": 4, "labels": ["a"]}):
        with pytest.raises(ValueError):
            HeadConfig(**bad)
