"""The object users hold: a frozen base model with a bank of reps; loading a local model directory."""

from __future__ import annotations

import torch

from core_helpers import new_model, perturb
from tiny_models import batch, tiny_base, tiny_tokenizer
from xlt import BottleneckConfig, PromptConfig, Role, XLTModel


def test_base_is_frozen_and_keeps_its_mode():
    base = tiny_base("bert")
    assert any(p.requires_grad for p in base.parameters())
    m = XLTModel(base, tiny_tokenizer())
    assert not any(p.requires_grad for p in m.base.parameters())
    assert not m.training and not m.base.training
    assert XLTModel(tiny_base("t5").train(), None).base.training


def test_bank():
    m = new_model("t5")
    sk = m.add_language("sk", PromptConfig(2, init="vocab"))
    nli = m.add_task("nli", BottleneckConfig(), name="nli/custom")
    assert (sk.name, sk.role, sk.info.language, sk.info.task) == ("sk/prompt", Role.LANGUAGE, "sk", None)
    assert (nli.name, nli.role, nli.info.task) == ("nli/custom", Role.TASK, "nli")
    assert sk.info.fingerprint == m.fingerprint and "xlt_version" in sk.info.provenance
    assert m.rep("sk/prompt") is sk and list(m.reps) == ["sk/prompt", "nli/custom"]
    assert m.remove("sk/prompt") is sk and list(m.reps) == ["nli/custom"]
    # a removed rep no longer runs, and can be attached again
    m.attach(sk)
    assert list(m.reps) == ["nli/custom", "sk/prompt"]


def test_from_pretrained_local_directory(tmp_path):
    m = new_model("gpt2")
    m.base.save_pretrained(tmp_path / "base")
    m.tokenizer.save_pretrained(tmp_path / "base")
    loaded = XLTModel.from_pretrained(tmp_path / "base", local_files_only=True)
    assert type(loaded.base) is type(m.base) and loaded.tokenizer is not None
    assert loaded.fingerprint.name == str(tmp_path / "base")
    assert loaded.fingerprint.shape == m.fingerprint.shape
    ids, mask = batch([4])
    torch.testing.assert_close(loaded(ids, mask).logits, m(ids, mask).logits)
    t5 = new_model("t5")  # other families pick their own Auto class
    t5.base.save_pretrained(tmp_path / "t5")
    assert XLTModel.from_pretrained(tmp_path / "t5", tokenizer=False).host.family == "encoder_decoder"
    bert = new_model("bert")
    bert.base.save_pretrained(tmp_path / "bert")
    assert XLTModel.from_pretrained(tmp_path / "bert", tokenizer=False).host.family == "encoder"


def test_rep_moves_with_the_model():
    m = new_model("llama")
    m.add_language("sk", BottleneckConfig(reduction_factor=4))
    perturb(m)
    m.to(torch.float64)
    ids, mask = batch([3])
    out = m(ids, mask, plan="sk/bottleneck").logits
    assert out.dtype == torch.float64
