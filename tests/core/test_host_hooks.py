"""What each family declares on its host: its LM objective, how it sees a (source, target) pair, its Auto class."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from tiny_models import tiny_base
from xlt import BottleneckConfig, HeadConfig, PlanError, Role, UnsupportedError, XLTError
from xlt.batching import pad
from xlt.hosts import HOSTS, host_class, host_for, supported_model_types
from xlt.hosts.decoder import GPT2Host, LlamaHost
from xlt.hosts.encoder import EncoderHost
from xlt.hosts.encoder_decoder import EncoderDecoderHost

SOURCES = [[5, 6, 7], [8]]
TARGETS = [[9, 1], [10, 11, 1]]
PAD = 0


@pytest.mark.parametrize(
    ("host", "objective", "lm_head", "prefix"),
    [
        (EncoderHost, "masked_lm", True, ""),
        (EncoderDecoderHost, "span_corruption", False, ""),
        (GPT2Host, "causal_lm", False, " "),
        (LlamaHost, "causal_lm", False, " "),
    ],
)
def test_family_declarations(host, objective, lm_head, prefix):
    assert (host.lm_objective, host.needs_lm_head, host.answer_prefix) == (objective, lm_head, prefix)


def test_every_host_declares_an_objective():
    assert {host.lm_objective for host in HOSTS} == {"masked_lm", "span_corruption", "causal_lm"}


def test_pad_right_pads_to_the_longest_row():
    ids, mask = pad([[1, 2, 3], [4]], -7)
    assert ids.tolist() == [[1, 2, 3], [4, -7, -7]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert ids.dtype == mask.dtype == torch.int64


def test_encoder_decoder_batch():
    batch = EncoderDecoderHost().text_to_text_batch(SOURCES, TARGETS, PAD)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[9, 1, -100], [10, 11, 1]]


@pytest.mark.parametrize("host", [GPT2Host, LlamaHost])
def test_decoder_batch(host):
    batch = host().text_to_text_batch(SOURCES, TARGETS, 3)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 9, 1], [8, 10, 11, 1, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 9, 1], [-100, 10, 11, 1, -100]]
    assert all(t.dtype == torch.int64 for t in batch.values())


def test_encoder_refuses_text_to_text():
    with pytest.raises(UnsupportedError, match="encoder models cannot host text-to-text training"):
        EncoderHost().text_to_text_batch(SOURCES, TARGETS, PAD)


def _former_auto_class(config) -> type:
    """The rule XLTModel.from_pretrained applied before the hosts declared their Auto class."""
    if getattr(config, "is_encoder_decoder", False):
        return AutoModelForSeq2SeqLM
    if config.model_type in ("gpt2", "llama", "qwen2", "qwen3", "mistral"):
        return AutoModelForCausalLM
    return AutoModel


@pytest.mark.parametrize("model_type", supported_model_types())
@pytest.mark.parametrize("is_encoder_decoder", [None, True, False])
def test_auto_class_as_before(model_type, is_encoder_decoder):
    config = AutoConfig.for_model(model_type)
    if is_encoder_decoder is not None:
        config.is_encoder_decoder = is_encoder_decoder
    assert host_class(model_type).auto_class(config) is _former_auto_class(config)


@pytest.mark.parametrize(
    ("model_type", "auto"),
    [
        ("t5", AutoModelForSeq2SeqLM),
        ("bert", AutoModel),
        ("gpt2", AutoModelForCausalLM),
        ("qwen2", AutoModelForCausalLM),
    ],
)
def test_auto_class_per_family(model_type, auto):
    assert host_class(model_type).auto_class(AutoConfig.for_model(model_type)) is auto


def test_generation_refused_by_the_family_without_a_decoder():
    host = EncoderHost()
    assert not host.supports_generation
    with pytest.raises(UnsupportedError, match=r"encoder models cannot host generation \(an encoder has no decoder"):
        host.generate(None, None, None)  # type: ignore[arg-type]
    assert str(host.generation_refusal()) == (
        "encoder models cannot host generation (an encoder has no decoder; use a task head)"
    )


@pytest.mark.parametrize(
    ("host", "task_type", "submodules"),
    [(EncoderHost, "FEATURE_EXTRACTION", 1), (EncoderDecoderHost, "SEQ_2_SEQ_LM", 2), (GPT2Host, "CAUSAL_LM", 1)],
)
def test_peft_layout(host, task_type, submodules):
    assert (host.peft_task_type, host.peft_submodules) == (task_type, submodules)


def test_forward_checks_per_family():
    ids = torch.ones(1, 2, dtype=torch.long)
    with pytest.raises(PlanError, match="labels= on an encoder needs a plan with a task head"):
        EncoderHost().check_forward(ids, None, has_head=False)
    EncoderHost().check_forward(ids, None, has_head=True)
    with pytest.raises(XLTError, match="an encoder-decoder forward needs labels= or decoder_input_ids="):
        EncoderDecoderHost().check_forward(None, None, has_head=False)
    EncoderDecoderHost().check_forward(None, ids, has_head=False)
    with pytest.raises(XLTError, match="decoder_input_ids= is for encoder-decoders; this is a gpt2 model"):
        GPT2Host().check_forward(ids, ids, has_head=False)
    with pytest.raises(XLTError, match="a causal LM's labels are the input ids themselves"):
        LlamaHost().check_lm_labels(ids, torch.ones(1, 3, dtype=torch.long))
    EncoderDecoderHost().check_lm_labels(ids, torch.ones(1, 3, dtype=torch.long))


def test_only_decoders_generate_after_the_input():
    assert [host.generation_continues_input for host in HOSTS] == [False, False, True, True]


def test_rep_checks():
    head = HeadConfig("sequence", num_labels=2)
    with pytest.raises(UnsupportedError, match="rep 'sk/bottleneck': encoder-decoder models cannot host an invertible"):
        EncoderDecoderHost().check_kind(BottleneckConfig(invertible="nice"), "sk/bottleneck")
    GPT2Host().check_kind(BottleneckConfig(invertible="nice"), "sk/bottleneck")
    with pytest.raises(UnsupportedError, match="rep 'x': gpt2 models are text-to-text and take no head"):
        GPT2Host().check_head("x", Role.TASK, head)
    with pytest.raises(XLTError, match="rep 'x': only task representations may own a head"):
        EncoderHost().check_head("x", Role.LANGUAGE, head)
    EncoderHost().check_head("x", Role.TASK, head)


@pytest.mark.parametrize(("arch", "suffix"), [("bert", ""), ("t5", ""), ("gpt2", ".attention_adapters")])
def test_adapterhub_path(arch, suffix):
    base = tiny_base(arch)
    host = host_for(base)
    site = host.bottleneck_sites(base)[0]
    assert host.adapterhub_path(site, "owner") == f"owner{suffix}"
