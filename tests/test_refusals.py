"""Invariant 4, nothing is silently dropped: a plan or rep that cannot be honoured raises one clear error,
and it does so before the base model computes anything."""

from __future__ import annotations

import json

import pytest
import torch

from core_helpers import decoder_inputs, new_model, no_compute, perturb
from tiny_models import ARCHS, FAMILY, batch, tiny_base, tiny_tokenizer
from xlt import (
    BottleneckConfig,
    FingerprintError,
    HeadConfig,
    LoRAConfig,
    Plan,
    PlanError,
    PromptConfig,
    UnsupportedError,
    XLTError,
    XLTModel,
)
from xlt.reps.base import RepInfo, Representation
from xlt.reps.context import BuildContext
from xlt.reps.heads import Head
from xlt.reps.registry import get_kind


@pytest.fixture(scope="module", params=ARCHS)
def model(request):
    arch = request.param
    m = new_model(arch)
    m.add_language("sk", PromptConfig(num_virtual_tokens=2, init="vocab"))
    m.add_task("nli", BottleneckConfig(reduction_factor=4))
    perturb(m)
    return arch, m


def call(arch, m, plan=None, plans=None, rows=2, generate=False):
    ids, mask = batch([4, 3, 2, 5][:rows])
    if generate:
        return m.generate(ids, mask, plan=plan, plans=plans, max_new_tokens=2)
    return m(ids, mask, plan=plan, plans=plans, **decoder_inputs(arch, rows))


def test_the_counter_sees_compute(model):
    """The no-compute check itself can fail: a valid call runs the base model."""
    arch, m = model
    with pytest.raises(AssertionError, match="module calls"), no_compute(m):
        call(arch, m, plan="sk/prompt+nli/bottleneck")


def test_unknown_rep(model):
    arch, m = model
    generations = [False] if FAMILY[arch] == "encoder" else [False, True]
    for generate in generations:
        with no_compute(m), pytest.raises(PlanError, match=r"unknown rep\(s\) \['xx/prompt'\].*sk/prompt"):
            call(arch, m, plan="sk/prompt+xx/prompt", generate=generate)
        with no_compute(m), pytest.raises(PlanError, match="unknown rep"):
            call(arch, m, plans=["sk/prompt", "nli/adapter"], generate=generate)


def test_plans_length_must_match_batch(model):
    arch, m = model
    with no_compute(m), pytest.raises(PlanError, match="3 entries for a batch of 2 rows"):
        call(arch, m, plans=["sk/prompt", "base", "nli/bottleneck"])
    with no_compute(m), pytest.raises(PlanError, match="1 entries for a batch of 2 rows"):
        call(arch, m, plans=["sk/prompt"])


def test_rep_named_twice(model):
    arch, m = model
    with no_compute(m), pytest.raises(PlanError, match="names a rep twice"):
        call(arch, m, plan="sk/prompt+nli/bottleneck+sk/prompt")
    with no_compute(m), pytest.raises(PlanError, match="names a rep twice"):
        call(arch, m, plans=["sk/prompt", ["nli/bottleneck", "nli/bottleneck"]])


def test_plan_and_plans_together(model):
    arch, m = model
    with no_compute(m), pytest.raises(PlanError, match=r"either plan= .* or plans="):
        call(arch, m, plan="sk/prompt", plans=["sk/prompt", "sk/prompt"])


def test_encoders_do_not_generate():
    m = new_model("bert")
    with no_compute(m), pytest.raises(UnsupportedError, match="generation"):
        m.generate(*batch([3]), plan="base")


@pytest.mark.parametrize("arch", [a for a in ARCHS if FAMILY[a] != "encoder"])
def test_heads_only_on_encoders(arch):
    m = new_model(arch)
    with no_compute(m), pytest.raises(UnsupportedError, match="take no head"):
        m.add_task("cls", BottleneckConfig(), head=HeadConfig("sequence", num_labels=3))
    assert "cls/bottleneck" not in m.reps
    # a rep that carries a head, built elsewhere (a file, another tool), is refused on attach too
    body = get_kind("bottleneck").build(BottleneckConfig(), BuildContext(m.base, m.host, None))
    info = RepInfo("cls/bottleneck", "bottleneck", "task", task="cls", fingerprint=m.fingerprint)
    rep = Representation(info, BottleneckConfig(), body, Head(HeadConfig(), 32))
    with no_compute(m), pytest.raises(UnsupportedError, match="take no head"):
        m.attach(rep)
    assert "cls/bottleneck" not in m.reps


def test_head_only_on_task_reps():
    m = new_model("bert")
    with pytest.raises(XLTError, match="only task representations may own a head"):
        m.add_language("sk", BottleneckConfig(), head=HeadConfig())


@pytest.mark.parametrize("arch", ["t5", "mt5"])
def test_invertible_not_on_encoder_decoders(arch, tmp_path):
    m = new_model(arch)
    with no_compute(m), pytest.raises(UnsupportedError, match="invertible"):
        m.add_language("sk", BottleneckConfig.madx())
    assert not m.reps
    # built elsewhere and attached
    config = BottleneckConfig.madx()
    body = get_kind("bottleneck").build(config, BuildContext(m.base, m.host, None))
    info = RepInfo("sk/bottleneck", "bottleneck", "language", "sk", None, m.fingerprint)
    rep = Representation(info, config, body)
    with no_compute(m), pytest.raises(UnsupportedError, match="invertible"):
        m.attach(rep)
    # loaded from a file that says invertible
    m.add_language("sk", BottleneckConfig())
    m.save_rep("sk/bottleneck", tmp_path / "sk")
    data = json.loads((tmp_path / "sk" / "xlt_rep.json").read_text())
    data["config"]["invertible"] = "nice"
    (tmp_path / "sk" / "xlt_rep.json").write_text(json.dumps(data))
    fresh = new_model(arch)
    with no_compute(fresh), pytest.raises(UnsupportedError, match="invertible"):
        fresh.load_rep(tmp_path / "sk")
    assert not fresh.reps


def test_two_heads_in_one_plan():
    m = new_model("bert")
    m.add_task("a", BottleneckConfig(), head=HeadConfig("sequence", num_labels=3))
    m.add_task("b", LoRAConfig(), head=HeadConfig("sequence", num_labels=3))
    with no_compute(m), pytest.raises(PlanError, match="two heads"):
        m(*batch([3, 4]), plan="a/bottleneck+b/lora")
    with no_compute(m), pytest.raises(PlanError, match="two heads"):
        m(*batch([3, 4]), plans=["a/bottleneck", "b/lora+a/bottleneck"])


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_two_invertible_adapters_in_one_plan(arch):
    m = new_model(arch)
    m.add_language("sk", BottleneckConfig.madx())
    m.add_task("nli", BottleneckConfig.madx())
    with no_compute(m), pytest.raises(PlanError, match="two invertible adapters"):
        m(*batch([3, 4]), plan="sk/bottleneck+nli/bottleneck")
    m(*batch([3, 4]), plans=["sk/bottleneck", "nli/bottleneck"])  # one each per row is fine


def test_mixed_head_and_headless_rows():
    m = new_model("bert")
    m.add_task("a", BottleneckConfig(), head=HeadConfig("sequence", num_labels=3))
    m.add_task("b", LoRAConfig())
    m.add_task("tok", PromptConfig(2, init="vocab"), head=HeadConfig("token", num_labels=3))
    with no_compute(m), pytest.raises(PlanError, match="some rows' plans have a head and some do not"):
        m(*batch([3, 4]), plans=["a/bottleneck", "b/lora"])
    with no_compute(m), pytest.raises(PlanError, match="heads of different shapes"):
        m(*batch([3, 4]), plans=["a/bottleneck", "tok/prompt"])


def test_head_plans_do_not_generate():
    m = new_model("gpt2")
    # a decoder cannot own a head at all; on an encoder generation is refused first: both before compute
    e = new_model("bert")
    e.add_task("a", BottleneckConfig(), head=HeadConfig())
    with no_compute(e), pytest.raises(UnsupportedError):
        e.generate(*batch([3]), plan="a/bottleneck")
    with no_compute(m), pytest.raises(UnsupportedError):
        m.add_task("a", BottleneckConfig(), head=HeadConfig())


@pytest.mark.parametrize("arch", ARCHS)
def test_rep_of_another_base_model(arch, tmp_path):
    trained_on = new_model(arch)
    rep = trained_on.add_language("sk", BottleneckConfig(reduction_factor=4))
    trained_on.save_rep("sk/bottleneck", tmp_path / "sk")
    other = XLTModel(tiny_base(arch, seed=1), tiny_tokenizer(), name=f"another-{arch}")
    trained_on.remove("sk/bottleneck")
    with no_compute(other), pytest.raises(FingerprintError, match=f"trained on base model 'tiny-{arch}'"):
        other.attach(rep)
    with no_compute(other), pytest.raises(FingerprintError, match="allow_other_base=True"):
        other.load_rep(tmp_path / "sk")
    assert not other.reps


@pytest.mark.parametrize("arch", ["t5", "bert", "gpt2", "llama"])
def test_rep_of_another_shape(arch, tmp_path):
    small = new_model(arch)
    rep = small.add_task("nli", LoRAConfig(rank=2))
    small.save_rep("nli/lora", tmp_path / "nli")
    small.remove("nli/lora")
    base = tiny_base(arch)
    config = base.config.to_dict()
    config.pop("_name_or_path", None)
    bigger = type(base)(type(base.config).from_dict({**config, "vocab_size": 96}))
    bigger.config._name_or_path = f"tiny-{arch}"  # same name, another shape: refused all the same
    other = XLTModel(bigger.eval(), tiny_tokenizer())
    for allow in (False, True):
        with no_compute(other), pytest.raises(FingerprintError, match="vocab_size=128; this model has 96"):
            other.attach(rep, allow_other_base=allow)
        with no_compute(other), pytest.raises(FingerprintError, match="vocab_size=128"):
            other.load_rep(tmp_path / "nli", allow_other_base=allow)
    assert not other.reps


def test_lora_targets_that_do_not_exist():
    m = new_model("gpt2")
    with no_compute(m), pytest.raises(UnsupportedError, match=r"\['q_proj'\] are not linear layers.*c_attn"):
        m.add_task("t", LoRAConfig(target_modules=["q_proj"]))


def test_bank_errors():
    m = new_model("bert")
    m.add_task("t", LoRAConfig())
    with pytest.raises(XLTError, match="already exists"):
        m.add_task("t", LoRAConfig())
    with pytest.raises(XLTError, match="invalid rep name"):
        m.add_task("t", LoRAConfig(), name="bad name!")
    with pytest.raises(XLTError, match="no rep 'x/lora'"):
        m.remove("x/lora")
    with pytest.raises(XLTError, match="no rep 'x/lora'"):
        m.rep("x/lora")
    with pytest.raises(XLTError, match="unknown representation kind"):
        get_kind("hypernetwork")
    with pytest.raises(XLTError, match="not a registered representation config"):
        m.add_task("t", HeadConfig())  # type: ignore[arg-type]


def test_text_to_text_forward_needs_a_target():
    m = new_model("t5")
    with pytest.raises(XLTError, match="labels= or decoder_input_ids="):
        m(*batch([3]), plan="base")


def test_plan_value_is_checked_before_routing():
    with pytest.raises(PlanError):
        Plan(("sk/prompt", ""))
    m = new_model("bert")
    with no_compute(m), pytest.raises(PlanError, match="rep names"):
        m(torch.ones(1, 2, dtype=torch.long), plan=["sk/prompt", 3])  # type: ignore[list-item]


def test_saving_never_replaces_an_unrelated_directory(tmp_path):
    from xlt import FormatError
    from xlt.formats import export_peft_prompt

    m = new_model("t5")
    m.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab"))
    target = tmp_path / "data"
    target.mkdir()
    (target / "train.jsonl").write_text("precious\n")
    with pytest.raises(FormatError, match="not an earlier save"):
        m.save_rep("sk/prompt", target)
    with pytest.raises(FormatError, match="not an earlier save"):
        export_peft_prompt(m, "sk/prompt", target)
    assert (target / "train.jsonl").read_text() == "precious\n"
    m.save_rep("sk/prompt", tmp_path / "rep")
    m.save_rep("sk/prompt", tmp_path / "rep")  # an earlier save of the same kind is replaced


def test_prompt_plus_input_beyond_the_position_table_is_refused():
    m = new_model("bert")
    m.add_language("sk", PromptConfig(num_virtual_tokens=20, init="vocab"))
    limit = m.host.max_positions(m.base)
    ids, mask = batch([limit - 10])
    with no_compute(m), pytest.raises(XLTError, match="exceeds this model's"):
        m(ids, mask, plan="sk/prompt")
    m(ids, mask)  # without the prompt it fits


def test_arguments_that_would_be_ignored_are_refused():
    m = new_model("bert")
    with no_compute(m), pytest.raises(PlanError, match="needs a plan with a task head"):
        m(*batch([3]), labels=torch.tensor([1]))
    with pytest.raises(TypeError):
        m(*batch([3]), bogus=1)
    t5 = new_model("t5")
    with no_compute(t5), pytest.raises(XLTError, match="needs labels= or decoder_input_ids="):
        t5(*batch([3]))
