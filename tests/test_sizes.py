"""The paper's sizes on mt0-base (mT5-base: 12+12 layers, d_model 768, d_ff 2048, 12 heads, vocab 250,112),
built on the meta device so no weights are allocated: reps are created on the base model's device."""

from __future__ import annotations

import pytest
import torch
from transformers import MT5Config, MT5ForConditionalGeneration

from xlt import BottleneckConfig, LoRAConfig, PromptConfig, XLTModel

MT0_BASE = {
    "d_model": 768,
    "d_ff": 2048,
    "d_kv": 64,
    "num_layers": 12,
    "num_decoder_layers": 12,
    "num_heads": 12,
    "vocab_size": 250112,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
}


@pytest.fixture(scope="module")
def mt0_base():
    with torch.device("meta"):
        base = MT5ForConditionalGeneration(MT5Config(**MT0_BASE))
    assert next(base.parameters()).device.type == "meta"
    return XLTModel(base.eval(), None, name="bigscience/mt0-base")


def on_meta(rep):
    return all(p.device.type == "meta" for p in rep.parameters())


def test_base_shape(mt0_base):
    fp = mt0_base.fingerprint
    assert (fp.model_type, fp.hidden_size, fp.num_layers, fp.num_decoder_layers, fp.vocab_size) == (
        "mt5",
        768,
        12,
        12,
        250112,
    )
    encoder_block = sum(p.numel() for p in mt0_base.base.encoder.block[1].parameters())
    assert encoder_block == 4 * 768 * 768 + 3 * 768 * 2048 + 2 * 768  # attention, gated FFN, two norms


def test_pfeiffer_adapter_has_the_papers_size(mt0_base):
    rep = mt0_base.add_language("sk", BottleneckConfig())
    # one 768 -> 48 -> 768 bottleneck after the feed-forward sub-layer of each of the 24 blocks
    assert len(rep.body.blocks) == 24
    assert rep.num_parameters() == 1_789_056 == 24 * (768 * 48 + 48 + 48 * 768 + 768)
    assert on_meta(rep)


def test_soft_prompt_has_the_papers_size(mt0_base):
    rep = mt0_base.add_language("de", PromptConfig(num_virtual_tokens=50, init="random"))
    assert rep.num_parameters() == 38_400 == 50 * 768
    assert tuple(rep.body.embedding.shape) == (50, 768)
    assert on_meta(rep)


def test_other_kinds_sizes(mt0_base):
    houlsby = mt0_base.add_task("qa", BottleneckConfig.houlsby())
    assert houlsby.num_parameters() == 2 * 1_789_056  # after self-attention too, in all 24 blocks
    lora = mt0_base.add_task("nli", LoRAConfig(rank=8))
    # q and v of 12 encoder self-attentions, 12 decoder self- and 12 cross-attentions: 72 x (8x768 + 768x8),
    # PEFT's count for a T5-base-shaped model
    assert len(lora.body.deltas) == 72
    assert lora.num_parameters() == 884_736
    assert on_meta(houlsby) and on_meta(lora)
