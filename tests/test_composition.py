"""Invariant 1, same plan, same computation: a plan's composition is the one written down (SLP+TP is exactly
``[LP ; TP ; x]``), and training-mode forward, eval forward and generation all run that one composition."""

from __future__ import annotations

import pytest
import torch

from core_helpers import (
    TEXT_TO_TEXT,
    assert_rows_close,
    decoder_inputs,
    main_output,
    max_diff,
    new_model,
    perturb,
)
from tiny_models import ARCHS, FAMILY, batch
from xlt import BottleneckConfig, LoRAConfig, Plan, PromptConfig


def slp_tp(arch):
    m = new_model(arch)
    m.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab"))
    m.add_task("nli", PromptConfig(num_virtual_tokens=4, init="text", init_text="w5 w6 w7"))
    perturb(m)
    return m


def prompt_tables(m, *names):
    return [m.rep(name).body.embedding.detach() for name in names]


def embed_with(m, ids, *tables):
    """The manual composition: the given prompt tables, then the input's embeddings, for one unpadded row."""
    emb = m.base.get_input_embeddings()(ids)
    return torch.cat([*(t.unsqueeze(0) for t in tables), emb], 1)


def training(m, mode):
    """'train': the task prompt trained with the language prompt active and frozen (SLP+TP's task run)."""
    if mode == "train":
        m.train_reps("nli/prompt")
        m.train()


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("arch", ["t5", "mt5"])
def test_slp_tp_is_language_then_task_then_input_t5(arch, mode):
    m = slp_tp(arch)
    training(m, mode)
    lp, tp = prompt_tables(m, "sk/prompt", "nli/prompt")
    lengths = [5, 3]
    ids, mask = batch(lengths)
    dec = decoder_inputs(arch, 2)["decoder_input_ids"]
    out = m(ids, mask, plan="sk/prompt+nli/prompt", labels=dec)
    encoder = m.base.get_encoder()
    for i, n in enumerate(lengths):
        row = ids[i : i + 1, :n]
        with torch.no_grad():
            x = embed_with(m, row, lp, tp)
            manual = encoder(inputs_embeds=x).last_hidden_state
            ref = m.base(inputs_embeds=x, labels=dec[i : i + 1])
            # the reference code's training defect, and the reversed order: both are other computations
            doubled = encoder(inputs_embeds=embed_with(m, row, lp, lp, tp)).last_hidden_state
            reversed_ = encoder(inputs_embeds=embed_with(m, row, tp, lp)).last_hidden_state
        assert_rows_close(out.encoder_hidden_states[i : i + 1, :n], manual[:, 7:], f"row {i} encoder")
        assert_rows_close(out.logits[i : i + 1], ref.logits, f"row {i} logits")
        solo = m(ids[i : i + 1, :n], plan="sk/prompt+nli/prompt", labels=dec[i : i + 1])
        torch.testing.assert_close(solo.loss.detach(), ref.loss, rtol=1e-5, atol=1e-6)
        assert max_diff(manual[:, 7:], doubled[:, 10:]) > 1e-3
        assert max_diff(manual[:, 7:], reversed_[:, 7:]) > 1e-3


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_slp_tp_is_language_then_task_then_input_decoder(arch, mode):
    m = slp_tp(arch)
    training(m, mode)
    lp, tp = prompt_tables(m, "sk/prompt", "nli/prompt")
    lengths = [6, 4]
    ids, mask = batch(lengths)
    labels = ids.masked_fill(mask == 0, -100)
    out = m(ids, mask, plan="sk/prompt+nli/prompt", labels=labels)
    for i, n in enumerate(lengths):
        row = ids[i : i + 1, :n]
        with torch.no_grad():
            x = embed_with(m, row, lp, tp)
            # Hugging Face's own loss over [LP ; TP ; x]; prompt positions carry no prediction in xlt, so the
            # first input token (which only the prompt could predict) is unlabelled too
            full_labels = torch.cat([torch.full((1, 8), -100), row[:, 1:]], 1)
            ref = m.base(inputs_embeds=x, labels=full_labels)
            doubled = m.base(inputs_embeds=embed_with(m, row, lp, lp, tp)).logits
        assert_rows_close(out.logits[i : i + 1, :n], ref.logits[:, 7:], f"row {i} logits")
        assert max_diff(ref.logits[:, 7:], doubled[:, 10:]) > 1e-3
        solo = m(row, plan="sk/prompt+nli/prompt", labels=row)
        torch.testing.assert_close(solo.loss.detach(), ref.loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["bert", "xlm-roberta"])
def test_slp_tp_is_language_then_task_then_input_encoder(arch):
    """Encoders: the prompts take positions 0..6 and the input 7.., exactly as the manual sequence would
    (RoBERTa-style models count from padding_idx + 1, as they do for themselves)."""
    m = slp_tp(arch)
    lp, tp = prompt_tables(m, "sk/prompt", "nli/prompt")
    ids, mask = batch([5, 2])
    out = m(ids, mask, plan="sk/prompt+nli/prompt")
    for i, n in enumerate([5, 2]):
        with torch.no_grad():
            manual = m.base(inputs_embeds=embed_with(m, ids[i : i + 1, :n], lp, tp)).last_hidden_state
        assert_rows_close(out.hidden_states[i : i + 1, :n], manual[:, 7:], f"row {i}")


def every_kind(arch):
    m = new_model(arch)
    m.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab"))
    m.add_language("de", BottleneckConfig(reduction_factor=4))
    m.add_task("nli", BottleneckConfig.houlsby(reduction_factor=4))
    m.add_task("t", LoRAConfig(rank=2))
    m.add_task("qa", PromptConfig(num_virtual_tokens=2, init="vocab"))
    plans = ["sk/prompt+nli/bottleneck", "de/bottleneck+t/lora", "sk/prompt+qa/prompt+t/lora+de/bottleneck"]
    if FAMILY[arch] != "encoder_decoder":
        m.add_language("cs", BottleneckConfig.madx(reduction_factor=4))
        plans.append("cs/bottleneck+qa/prompt")
    perturb(m)
    return m, plans


@pytest.mark.parametrize("arch", ARCHS)
def test_training_mode_forward_equals_eval_forward(arch):
    """With dropout off, train() changes nothing about what a plan computes (the same code path)."""
    m, plans = every_kind(arch)
    lengths = [5, 3, 6, 4][: len(plans)]
    ids, mask = batch(lengths)
    kw = decoder_inputs(arch, len(plans))
    labels = None
    if FAMILY[arch] == "decoder":
        labels = ids.masked_fill(mask == 0, -100)
    elif FAMILY[arch] == "encoder_decoder":
        labels = kw.pop("decoder_input_ids")
    extra = {"labels": labels} if labels is not None else {}
    m.eval()
    ev = m(ids, mask, plans=plans, **kw, **extra)
    for plan in plans:
        m.train_reps(*Plan.parse(plan).reps)
        m.train()
        assert m.base.training and all(r.training for r in m.reps.values())
        tr = m(ids, mask, plans=plans, **kw, **extra)
        m.eval()
        assert_rows_close(main_output(arch, tr), main_output(arch, ev), f"{arch} train vs eval")
        if labels is not None:
            torch.testing.assert_close(tr.loss.detach(), ev.loss)


def greedy(logits):
    """The greedy choice under min_new_tokens: end-of-sequence (id 1) is not allowed yet."""
    return logits.index_fill(-1, torch.tensor([1]), float("-inf")).argmax(-1)


@pytest.mark.parametrize("arch", TEXT_TO_TEXT)
def test_generation_runs_the_forward_composition(arch):
    """Every greedy step's logits equal the teacher-forced forward logits of the same plan, so generation
    (with its cache) and training compute one thing."""
    m, plans = every_kind(arch)
    lengths = [5, 3, 6, 4][: len(plans)]
    ids, mask = batch(lengths, seed=2)
    steps = 4
    gen = m.generate(
        ids,
        mask,
        plans=plans,
        max_new_tokens=steps,
        min_new_tokens=steps,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
    )
    scores = torch.stack(gen.logits, 1)  # [batch, steps, vocab], before any logits processor
    if FAMILY[arch] == "encoder_decoder":
        dec = gen.sequences[:, :-1]
        logits = m(ids, mask, plans=plans, decoder_input_ids=dec).logits
        assert_rows_close(scores, logits, f"{arch} generation vs forward")
        assert torch.equal(greedy(logits), gen.sequences[:, 1:])
    else:
        for i, n in enumerate(lengths):
            row = torch.cat([ids[i : i + 1, :n], gen.sequences[i : i + 1, :-1]], 1)
            logits = m(row, plan=plans[i]).logits[:, n - 1 :]
            assert_rows_close(scores[i : i + 1], logits, f"{arch} row {i} generation vs forward")
            assert torch.equal(greedy(logits), gen.sequences[i : i + 1])
