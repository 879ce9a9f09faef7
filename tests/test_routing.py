"""Invariant 2, routing is exact: a row's output in a routed batch equals its output alone, for every family
and kind, in forward (logits, hidden states, per-row losses) and in generation (greedy, beam, several
sequences)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core_helpers import (
    TEXT_TO_TEXT,
    assert_rows_close,
    decoder_inputs,
    main_output,
    max_diff,
    new_model,
    perturb,
    row_of,
    same_generation,
    supports_invertible,
)
from tiny_models import ARCHS, FAMILY, batch
from xlt import BottleneckConfig, LoRAConfig, Plan, XLTModel
from xlt.reps.lora import gather_signature
from xlt.routing import Route

KIND_PLANS = {  # kind -> (plan of rep A, plan of rep B) of that kind
    "prompt": ("sk/prompt", "de/prompt"),
    "pfeiffer": ("sk/bottleneck", "nli/bottleneck"),
    "houlsby": ("de/bottleneck", "sk/bottleneck"),
    "lora": ("t/lora", "cs/lora"),
    "invertible": ("cs/invertible", "sk/bottleneck"),
}


def mixed_plans(arch: str) -> list[str]:
    plans = [
        "sk/prompt",
        "de/prompt+nli/bottleneck",
        "base",
        "sk/bottleneck+t/lora",
        "de/bottleneck+sk/bottleneck",
        "sk/prompt+de/prompt+de/bottleneck",
        "sk/prompt+nli/prompt",
        "cs/lora+t/lora+nli/prompt",
        "de/prompt+sk/bottleneck+nli/bottleneck+t/lora",
    ]
    if supports_invertible(arch):
        plans += ["cs/invertible+nli/bottleneck", "cs/invertible+de/prompt+t/lora"]
    return plans


LENGTHS = [5, 3, 6, 4, 2, 6, 3, 5, 4, 6, 3]


def run_rows(m, arch, ids, mask, plans, **extra):
    kw = decoder_inputs(arch, ids.shape[0])
    return m(ids, mask, plans=plans, **kw, **extra), kw


def solo(m, arch, ids, mask, i, n, plan, kw, **extra):
    kwi = {k: v[i : i + 1] for k, v in kw.items()}
    return m(ids[i : i + 1, :n], mask[i : i + 1, :n], plan=plan, **kwi, **extra)


def check_routed_forward(m, arch, plans, lengths):
    ids, mask = batch(lengths)
    out, kw = run_rows(m, arch, ids, mask, plans)
    routed = main_output(arch, out)
    for i, (plan, n) in enumerate(zip(plans, lengths, strict=True)):
        alone = main_output(arch, solo(m, arch, ids, mask, i, n, plan, kw))
        assert_rows_close(row_of(arch, routed, i, n), alone, f"{arch} row {i} ({plan})")
    return ids, mask, kw, routed


def rows_differing(arch, a, b, plans, other_plans, lengths) -> list[int]:
    """Rows whose plans differ and whose outputs differ clearly (far above float tolerance)."""
    rows = []
    for i, n in enumerate(lengths):
        if Plan.parse(plans[i]) != Plan.parse(other_plans[i]):
            x, y = row_of(arch, a, i, n), row_of(arch, b, i, n)
            assert max_diff(x, y) > 1e-3 * max(1.0, float(y.abs().max())), (
                f"{arch} row {i}: plan '{plans[i]}' computes what '{other_plans[i]}' does: a rep is dropped"
            )
            rows.append(i)
    return rows


@pytest.mark.parametrize("arch", ARCHS)
def test_mixed_kinds_and_prompt_lengths_route_exactly(bank, arch):
    m = bank(arch)
    plans = mixed_plans(arch)
    lengths = LENGTHS[: len(plans)]
    ids, mask, kw, routed = check_routed_forward(m, arch, plans, lengths)
    # The test can fail: one wrong plan for the whole batch, or the plans shifted by one row, change every row
    # whose plan differs.
    wrong = main_output(arch, m(ids, mask, plan=plans[0], **kw))
    assert len(rows_differing(arch, routed, wrong, plans, [plans[0]] * len(plans), lengths)) == len(plans) - 1
    shifted = plans[1:] + plans[:1]
    moved = main_output(arch, m(ids, mask, plans=shifted, **kw))
    assert len(rows_differing(arch, routed, moved, plans, shifted, lengths)) == len(plans)


# encoder-decoders take no invertible adapter (test_refusals and the capability matrix prove the error)
KIND_CASES = [(a, k) for a in ARCHS for k in KIND_PLANS if k != "invertible" or supports_invertible(a)]


@pytest.mark.parametrize(("arch", "kind"), KIND_CASES)
def test_each_kind_routes_exactly(bank, arch, kind):
    m = bank(arch)
    a, b = KIND_PLANS[kind]
    # rows 0 and 3 share rep a (one grouped computation), row 1 has none, row 2 has b, row 4 has both
    plans = [a, "base", b, a, f"{a}+{b}"]
    lengths = [4, 6, 2, 5, 3]
    ids, mask, kw, routed = check_routed_forward(m, arch, plans, lengths)
    base_out = main_output(arch, m(ids, mask, plan="base", **kw))
    assert rows_differing(arch, routed, base_out, plans, ["base"] * 5, lengths) == [0, 2, 3, 4]
    # a whole batch under one plan: every row equals its solo run too (the rows=None path)
    check_routed_forward(m, arch, [a] * 3, [3, 6, 4])


@pytest.mark.parametrize("arch", ARCHS)
def test_rows_sharing_a_rep_are_computed_together(bank, arch):
    m = bank(arch)
    block_calls, delta_calls = [], []
    rep = m.rep("sk/bottleneck")
    lora = m.rep("t/lora")
    key = next(iter(rep.body.blocks))
    h1 = rep.body.blocks[key].register_forward_hook(lambda mod, a, o: block_calls.append(a[0].shape[0]))
    key2 = next(iter(lora.body.deltas))
    h2 = lora.body.deltas[key2].register_forward_hook(lambda mod, a, o: delta_calls.append(a[0].shape[0]))
    try:
        ids, mask = batch([4, 3, 5, 2])
        plans = ["sk/bottleneck+t/lora", "base", "sk/bottleneck", "t/lora"]
        run_rows(m, arch, ids, mask, plans)
    finally:
        h1.remove()
        h2.remove()
    # one call of the block over the two rows that use it (not one call per row), same for LoRA
    assert block_calls == [2]
    assert delta_calls == [2]


@pytest.mark.parametrize("arch", ARCHS)
def test_caller_left_padding_is_handled(bank, arch):
    """A left-padded batch without prompts (as decoder users pad for generation) gives each row its solo
    output; absolute-position models must not see shifted positions."""
    m = bank(arch)
    lengths = [5, 2, 4]
    right_ids, right_mask = batch(lengths)
    ids, mask = torch.zeros_like(right_ids), torch.zeros_like(right_mask)
    width = right_ids.shape[1]
    for i, n in enumerate(lengths):
        ids[i, width - n :], mask[i, width - n :] = right_ids[i, :n], 1
    plans = ["sk/bottleneck", "t/lora", "base"]
    kw = decoder_inputs(arch, 3)
    out = main_output(arch, m(ids, mask, plans=plans, **kw))
    for i, (plan, n) in enumerate(zip(plans, lengths, strict=True)):
        alone = main_output(arch, solo(m, arch, right_ids, right_mask, i, n, plan, kw))
        got = out[i : i + 1] if FAMILY[arch] == "encoder_decoder" else out[i : i + 1, width - n :]
        assert_rows_close(got, alone, f"{arch} left-padded row {i}")


@pytest.mark.parametrize("arch", TEXT_TO_TEXT)
def test_per_row_losses_route_exactly(bank, arch):
    m = bank(arch)
    plans = mixed_plans(arch)[:6]
    lengths = [5, 3, 6, 4, 2, 6]
    ids, mask = batch(lengths)
    if FAMILY[arch] == "encoder_decoder":
        label_lengths = [3, 1, 4, 2, 4, 3]
        labels = torch.full((6, 4), -100)
        g = torch.Generator().manual_seed(3)
        for i, k in enumerate(label_lengths):
            labels[i, :k] = torch.randint(4, 100, (k,), generator=g)
    else:
        labels = ids.masked_fill(mask == 0, -100)
    out = m(ids, mask, plans=plans, labels=labels)
    logits = out.logits.float()
    if FAMILY[arch] == "decoder":  # token j predicts token j+1
        logits, targets = logits[:, :-1], labels[:, 1:]
    else:
        targets = labels
    # the batch loss is the mean over every labelled token of the batch
    overall = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, overall, rtol=1e-5, atol=1e-6)
    for i, (plan, n) in enumerate(zip(plans, lengths, strict=True)):
        k = int((labels[i] != -100).sum()) if FAMILY[arch] == "encoder_decoder" else n
        row_labels = labels[i : i + 1, :k]
        alone = m(ids[i : i + 1, :n], mask[i : i + 1, :n], plan=plan, labels=row_labels).loss
        row_loss = F.cross_entropy(logits[i], targets[i], ignore_index=-100)
        torch.testing.assert_close(row_loss, alone, rtol=1e-4, atol=1e-5, msg=f"{arch} row {i} loss")
    wrong = m(ids, mask, plan=plans[0], labels=labels).loss
    assert abs(float(wrong) - float(out.loss)) > 1e-3


GENERATION_MODES = {
    "greedy": {"num_beams": 1},
    "beam": {"num_beams": 3},
    "beam-2-sequences": {"num_beams": 3, "num_return_sequences": 2},
}


@pytest.mark.parametrize("mode", list(GENERATION_MODES))
@pytest.mark.parametrize("arch", TEXT_TO_TEXT)
def test_generation_routes_exactly(bank, arch, mode):
    m = bank(arch)
    plans = mixed_plans(arch)
    lengths = LENGTHS[: len(plans)]
    ids, mask = batch(lengths, seed=4)
    kwargs = {**GENERATION_MODES[mode], "max_new_tokens": 4, "do_sample": False}
    k = kwargs.get("num_return_sequences", 1)
    beams = kwargs["num_beams"]
    out = m.generate(ids, mask, plans=plans, output_scores=True, return_dict_in_generate=True, **kwargs)
    for i, (plan, n) in enumerate(zip(plans, lengths, strict=True)):
        alone = m.generate(
            ids[i : i + 1, :n],
            mask[i : i + 1, :n],
            plan=plan,
            output_scores=True,
            return_dict_in_generate=True,
            **kwargs,
        )
        assert same_generation(out.sequences[i * k : (i + 1) * k], alone.sequences), f"{arch} {mode} row {i}"
        # the scores of every step the row ran alone agree to float tolerance (a stronger check than tokens)
        for step, scores in enumerate(alone.scores):
            routed_scores = out.scores[step][i * beams : (i + 1) * beams]
            finite = torch.isfinite(scores)
            assert torch.equal(finite, torch.isfinite(routed_scores))
            assert_rows_close(routed_scores[finite], scores[finite], f"{arch} {mode} row {i} step {step}")
    plain = m.generate(ids, mask, plans=plans, **kwargs)
    assert torch.equal(plain, out.sequences)
    # the test can fail: one plan for all rows changes the first step's scores of every row whose plan differs
    wrong = m.generate(ids, mask, plan=plans[0], output_scores=True, return_dict_in_generate=True, **kwargs)
    for i in range(1, len(plans)):
        a = out.scores[0][i * beams : (i + 1) * beams]
        b = wrong.scores[0][i * beams : (i + 1) * beams]
        finite = torch.isfinite(a) & torch.isfinite(b)
        assert max_diff(a[finite], b[finite]) > 1e-3, f"{arch} row {i}: plan '{plans[i]}' has no effect"


@pytest.mark.parametrize("arch", TEXT_TO_TEXT)
def test_generation_of_right_padded_rows_without_prompts(bank, arch):
    """Rows of different lengths with no prompt in any plan: generation must continue each row from its own
    last token, not from its padding."""
    m = bank(arch)
    plans = ["sk/bottleneck", "t/lora", "base", "de/bottleneck"]
    lengths = [6, 2, 4, 3]
    ids, mask = batch(lengths, seed=9)
    kwargs = {"max_new_tokens": 4, "do_sample": False, "output_scores": True, "return_dict_in_generate": True}
    out = m.generate(ids, mask, plans=plans, **kwargs)
    for i, (plan, n) in enumerate(zip(plans, lengths, strict=True)):
        alone = m.generate(ids[i : i + 1, :n], mask[i : i + 1, :n], plan=plan, **kwargs)
        assert same_generation(out.sequences[i : i + 1], alone.sequences), f"{arch} row {i}"
        assert_rows_close(out.scores[0][i : i + 1], alone.scores[0], f"{arch} row {i} first step")


def test_route_groups_rows_by_rep(bank):
    m = bank("gpt2")
    plans = ["sk/prompt+sk/bottleneck", "base", "sk/prompt+nli/prompt+t/lora", "sk/prompt+sk/bottleneck"]
    plans.append("t/lora")
    route = m.route(5, plans=plans)
    groups = {tuple(r.name for r in reps): rows.tolist() for reps, rows in route.prompt_groups}
    assert groups == {("sk/prompt",): [0, 3], ("sk/prompt", "nli/prompt"): [2]}
    assert [[(rep.name, rows.tolist()) for rep, rows in depth] for depth in route.stack] == [
        [("sk/bottleneck", [0, 3])]
    ]
    assert [(rep.name, rows.tolist()) for rep, rows in route.loras] == [("t/lora", [2, 4])]
    assert route.heads == [] and route.headless_rows == 5
    uniform = m.route(3, plan="sk/prompt+t/lora")
    assert uniform.prompt_groups[0][1] is None and uniform.loras[0][1] is None
    # generation repeats each row in place (beams): row r becomes rows r*k .. r*k+k-1
    rows = torch.tensor([0, 3])
    assert route.expand(rows, 15).tolist() == [0, 1, 2, 9, 10, 11]
    assert route.expand(rows, 5) is rows


def test_stack_depth_follows_plan_order():
    """LA+TA stacks language first in every block; the reverse order is another computation."""
    m = new_model("bert")
    m.add_language("sk", BottleneckConfig(reduction_factor=4))
    m.add_task("nli", BottleneckConfig(reduction_factor=4))
    perturb(m, scale=0.3)
    ids, mask = batch([4, 5])
    route = m.route(2, plans=["sk/bottleneck+nli/bottleneck", "nli/bottleneck+sk/bottleneck"])
    assert [[rep.name for rep, _ in depth] for depth in route.stack] == [
        ["sk/bottleneck", "nli/bottleneck"],
        ["nli/bottleneck", "sk/bottleneck"],
    ]
    a = m(ids, mask, plan="sk/bottleneck+nli/bottleneck").hidden_states
    b = m(ids, mask, plan="nli/bottleneck+sk/bottleneck").hidden_states
    assert max_diff(a, b) > 1e-4
    both = ["sk/bottleneck+nli/bottleneck", "nli/bottleneck+sk/bottleneck"]
    routed = m(ids, mask, plans=both).hidden_states
    assert_rows_close(routed[:1], a[:1])
    assert_rows_close(routed[1:], b[1:])


def test_route_needs_rows():
    with pytest.raises(Exception, match="one plan per row"):
        Route([], torch.device("cpu"))


def gathering_bank(arch: str) -> XLTModel:
    """Language LoRAs on the same linears: three of one shape (two scalings), one of another rank; language
    bottlenecks: three Pfeiffer of one shape, one with another scaling, one Houlsby; a task bottleneck."""
    m = new_model(arch)
    for code, alpha in (("sk", 4.0), ("de", 4.0), ("sw", 8.0)):
        m.add_language(code, LoRAConfig(rank=2, alpha=alpha))
        m.add_language(code, BottleneckConfig(reduction_factor=4))
    m.add_language("te", LoRAConfig(rank=3))
    m.add_language("te", BottleneckConfig(reduction_factor=4, scaling=2.0))
    m.add_language("zh", BottleneckConfig.houlsby(reduction_factor=4))
    m.add_task("nli", BottleneckConfig(reduction_factor=4))
    perturb(m)
    return m


GATHER_CASES = [  # plans, and the reps that run alone (their own forward): the rest are gathered
    (["sk/lora", "de/lora", "base", "sk/lora"], set()),  # one scaling
    (["sk/lora", "de/lora", "base", "sw/lora", "sk/lora", "te/lora"], {"te/lora"}),  # two scalings; te alone
    (["sk/bottleneck", "de/bottleneck", "base", "sw/bottleneck", "te/bottleneck", "zh/bottleneck"],
     {"te/bottleneck", "zh/bottleneck"}),  # another scaling, another kind of block
    (["sk/bottleneck+nli/bottleneck", "de/bottleneck+nli/bottleneck", "sw/bottleneck+sk/lora", "de/lora"],
     {"nli/bottleneck"}),  # the language depth gathered; the task depth has one rep; the LoRAs gathered
]  # fmt: skip


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("plans", "alone"), GATHER_CASES)
def test_reps_of_disjoint_rows_run_as_one_gathered_product(arch, plans, alone):
    m = gathering_bank(arch)
    called: set[str] = set()
    modules = {name: getattr(rep.body, "deltas", None) or rep.body.blocks for name, rep in m.reps.items()}
    hooks = [
        module.register_forward_hook(lambda mod, a, o, name=name: called.add(name))
        for name, group in modules.items()
        for module in group.values()
    ]
    lengths = LENGTHS[: len(plans)]
    ids, mask = batch(lengths)
    try:
        run_rows(m, arch, ids, mask, plans)
    finally:
        for hook in hooks:
            hook.remove()
    assert called == alone  # gathered reps never run their own forward
    check_routed_forward(m, arch, plans, lengths)


@pytest.mark.parametrize("arch", TEXT_TO_TEXT)
def test_gathered_loras_route_generation_exactly(arch):
    m = gathering_bank(arch)
    plans = ["sk/lora", "de/lora", "base", "sw/lora", "te/lora"]
    lengths = [5, 3, 6, 4, 2]
    ids, mask = batch(lengths, seed=4)
    kwargs = {"num_beams": 2, "num_return_sequences": 2, "max_new_tokens": 4, "do_sample": False}
    out = m.generate(ids, mask, plans=plans, **kwargs)
    for i, (plan, n) in enumerate(zip(plans, lengths, strict=True)):
        alone = m.generate(ids[i : i + 1, :n], mask[i : i + 1, :n], plan=plan, **kwargs)
        assert same_generation(out[i * 2 : (i + 1) * 2], alone), f"{arch} row {i} ({plan})"


def test_dropout_in_training_keeps_deltas_apart():
    m = new_model("bert")
    m.add_language("sk", LoRAConfig(rank=2, dropout=0.1))
    m.add_language("de", LoRAConfig(rank=2, dropout=0.1))
    deltas = [next(iter(m.rep(name).body.deltas.values())) for name in ("sk/lora", "de/lora")]
    m.train()
    assert gather_signature(deltas[0]) is None  # each delta draws its own dropout mask
    m.eval()
    assert gather_signature(deltas[0]) == gather_signature(deltas[1]) is not None


def test_gathered_products_pass_the_gradients_of_separate_ones():
    m = gathering_bank("bert")
    names = ["sk/lora", "de/lora", "sk/bottleneck", "de/bottleneck"]
    params = m.train_reps(*names)
    plans = ["sk/bottleneck+sk/lora", "de/bottleneck+de/lora", "sk/lora", "de/bottleneck"]
    ids, mask = batch([4] * len(plans))

    def grads(loss: torch.Tensor) -> list[torch.Tensor]:
        return [g.clone() for g in torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)]

    # a fixed random readout: a plain sum of squares of layer-normed states would hardly depend on the reps
    weights = torch.randn(m(ids, mask, plan="base").hidden_states.shape, generator=torch.Generator().manual_seed(3))
    routed = grads((m(ids, mask, plans=plans).hidden_states * weights).sum())
    alone = grads(
        sum((m(ids[i : i + 1], mask[i : i + 1], plan=p).hidden_states * weights[i]).sum() for i, p in enumerate(plans))
    )
    assert all(float(g.abs().max()) > 1e-3 for g in routed)  # every rep's weights take part
    for a, b in zip(routed, alone, strict=True):
        assert_rows_close(a, b, "gradient")
