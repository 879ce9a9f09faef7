"""Hostile input to the Python API and to rep files: one clear XLTError (one line, naming the problem and the
fix), raised before any compute, never a traceback from deep inside torch or transformers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from core_helpers import new_model, no_compute
from threads import one_torch_thread
from tiny_models import VOCAB, batch, tiny_base, tiny_tokenizer
from xlt import (
    BottleneckConfig,
    FormatError,
    HeadConfig,
    LoRAConfig,
    Plan,
    PlanError,
    PromptConfig,
    UnsupportedError,
    XLTError,
    XLTModel,
)
from xlt.cli import main
from xlt.formats import import_adapterhub, import_peft_prompt
from xlt.model import head_loss


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def clear(exc: pytest.ExceptionInfo[XLTError], problem: str, fix: str) -> str:
    """The message is one line, names the problem (regex) and says how to fix it (regex)."""
    message = str(exc.value)
    assert "\n" not in message, message
    assert re.search(problem, message), f"{problem!r} not in {message!r}"
    assert re.search(fix, message), f"fix {fix!r} not in {message!r}"
    return message


def raises(error: type[XLTError], call: Callable[[], Any], problem: str, fix: str) -> str:
    with pytest.raises(error) as exc:
        call()
    assert type(exc.value) is error, f"{type(exc.value).__name__}: {exc.value}"
    return clear(exc, problem, fix)


# ---- shared tiny models --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert() -> XLTModel:
    m = new_model("bert")
    m.add_task("cls", PromptConfig(num_virtual_tokens=2, init="vocab"), head=HeadConfig(num_labels=3))
    m.add_task("tag", BottleneckConfig(reduction_factor=4), head=HeadConfig(type="token", num_labels=4))
    m.add_task("qa", LoRAConfig(rank=2), head=HeadConfig(type="span"))
    return m


@pytest.fixture(scope="module")
def gpt2() -> XLTModel:
    m = new_model("gpt2")
    m.add_language("sk", PromptConfig(num_virtual_tokens=4, init="vocab"))
    return m


@pytest.fixture(scope="module")
def t5() -> XLTModel:
    m = new_model("t5")
    m.add_language("sk", PromptConfig(num_virtual_tokens=2, init="vocab"))
    return m


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, gpt2: XLTModel) -> Path:
    """A valid xlt rep directory; tests copy it before damaging it."""
    return gpt2.save_rep("sk/prompt", tmp_path_factory.mktemp("reps") / "sk")


def copy_rep(saved: Path, target: Path) -> Path:
    target.mkdir()
    for f in saved.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    return target


def edit_config(directory: Path, **changes: Any) -> None:
    path = directory / "xlt_rep.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if key in data:
            data[key] = value
        else:
            data["config"][key] = value
    path.write_text(json.dumps(data))


# ---- 1. representation configs of the wrong type or out of range -------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_virtual_tokens", "ten"), ("num_virtual_tokens", 0), ("init", 5), ("init_std", [1]), ("seed", -1)],
)
def test_a_wrong_config_field_in_a_file_is_a_format_error(saved, tmp_path, gpt2, field, value):
    rep = copy_rep(saved, tmp_path / "rep")
    edit_config(rep, **{field: value})
    message = raises(FormatError, lambda: gpt2.load_rep(rep, name="x/prompt"), field, "re-save")
    assert "xlt_rep.json" in message
    assert "x/prompt" not in gpt2.reps


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: BottleneckConfig(reduction_factor=[1]), "reduction_factor"),
        (lambda: BottleneckConfig(scaling=float("nan")), "scaling"),
        (lambda: BottleneckConfig(dropout=-0.1), "dropout"),
        (lambda: LoRAConfig(rank=-3), "rank"),
        (lambda: LoRAConfig(rank=True), "rank"),
        (lambda: LoRAConfig(target_modules="q"), "target_modules"),
        (lambda: LoRAConfig(dropout=1.5), "dropout"),
        (lambda: PromptConfig(init_text=7), "init_text"),
        (lambda: HeadConfig(num_labels="3"), "num_labels"),
        (lambda: HeadConfig(dropout=2.0), "dropout"),
        (lambda: PromptConfig.from_dict(["num_virtual_tokens"]), "dict"),
    ],
)
def test_a_wrong_config_field_in_code_is_refused(make, field):
    raises(XLTError, make, field, r"fix|must|set|>=|use|dict of options")


def test_a_lora_file_with_a_negative_rank_is_refused(tmp_path, gpt2):
    m = new_model("gpt2")
    m.add_task("t", LoRAConfig(rank=2))
    rep = m.save_rep("t/lora", tmp_path / "lora")
    edit_config(rep, rank=-3)
    message = raises(FormatError, lambda: gpt2.load_rep(rep, name="t/bad"), "rank", "re-save")
    assert "xlt_rep.json" in message


def test_a_damaged_fingerprint_in_a_file_is_refused(saved, tmp_path, gpt2):
    rep = copy_rep(saved, tmp_path / "rep")
    data = json.loads((rep / "xlt_rep.json").read_text())
    data["fingerprint"]["hidden_size"] = "32"
    (rep / "xlt_rep.json").write_text(json.dumps(data))
    raises(FormatError, lambda: gpt2.load_rep(rep, name="fp/prompt"), "hidden_size", "re-save")


def test_a_rep_from_a_newer_format_is_refused(saved, tmp_path, gpt2):
    rep = copy_rep(saved, tmp_path / "rep")
    edit_config(rep, format_version=99)
    raises(FormatError, lambda: gpt2.load_rep(rep, name="v/prompt"), "format_version 99", "upgrade xlt")


# ---- 2. rep names are checked first at every entry point ------------------------------------------------------


@pytest.mark.parametrize("name", ["a.b", "../escape", "sk/../../x", "", "training", 5])
def test_a_bad_name_through_load_rep_is_refused_before_reading(tmp_path, gpt2, name):
    # the directory does not exist: the name must be refused before any file is looked at
    raises(XLTError, lambda: gpt2.load_rep(tmp_path / "nothing", name=name), "rep name", "use letters|choose another")


@pytest.mark.parametrize("name", ["a.b", "x/../y", "keys"])
def test_a_bad_name_through_add_is_refused(gpt2, name):
    before = set(gpt2.reps)
    raises(
        XLTError,
        lambda: gpt2.add_task("t", PromptConfig(num_virtual_tokens=2, init="vocab"), name=name),
        "rep name",
        "use letters|choose another",
    )
    raises(XLTError, lambda: gpt2.add_language("a.b", PromptConfig(init="vocab")), "rep name", "use letters")
    assert set(gpt2.reps) == before


def test_a_bad_name_through_the_importers_is_refused_before_reading(tmp_path, gpt2):
    missing = tmp_path / "nothing"
    for importer in (import_peft_prompt, import_adapterhub):
        raises(
            XLTError, lambda imp=importer: imp(gpt2, missing, role="task", task="t", name="a.b"), "rep name", "letters"
        )
        raises(XLTError, lambda imp=importer: imp(gpt2, missing, role="boss", task="t"), "role", "'language' or")


# ---- 3. plans that are not plans -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"plan": 5}, "plan 5"),
        ({"plans": [None, 3]}, r"plans\[1\]: plan 3"),
        ({"plan": {"language": 7}}, "is a dict"),
        ({"plan": {"sk/prompt"}}, "is a set"),
        ({"plans": "ab"}, "plans= takes one plan per row"),
        ({"plans": 2}, "plans= takes one plan per row"),
    ],
)
def test_a_plan_that_is_not_a_plan_is_refused(gpt2, kwargs, problem):
    ids, mask = batch([3, 2])
    with no_compute(gpt2):
        raises(PlanError, lambda: gpt2(ids, mask, **kwargs), problem, "a plan is|pass plan=|non-empty string")


def test_plan_constructors_refuse_non_strings():
    raises(PlanError, lambda: Plan.of(language=["x"]), r"language=\['x'\]", "a string")
    raises(PlanError, lambda: Plan.parse(5), "takes a string", "a plan is")
    raises(PlanError, lambda: Plan.from_dict({"reps": "a+b"}), "'a\\+b'", "list of rep names")
    raises(PlanError, lambda: Plan.from_json("{"), "does not parse", "write")


# ---- 4. head labels out of range --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "labels", "problem"),
    [
        ("cls/prompt", torch.tensor([3, 0]), "label 3 is out of range"),
        ("cls/prompt", torch.tensor([-3, 0]), "label -3 is out of range"),
        ("tag/bottleneck", torch.full((2, 3), 4), "label 4 is out of range"),
        ("qa/lora", torch.tensor([[0, 3], [1, 1]]), "label 3 is out of range"),
        ("cls/prompt", torch.tensor([[1], [0]]), r"shape \(2,\)"),
        ("cls/prompt", torch.tensor([1.0, 0.0]), "dtype torch.float32"),
    ],
)
def test_head_labels_out_of_range_are_refused_before_compute(bert, plan, labels, problem):
    ids, mask = batch([3, 2])
    with no_compute(bert):
        raises(XLTError, lambda: bert(ids, mask, plan=plan, labels=labels), problem, "fix|convert|got")


def test_head_loss_checks_labels_itself():
    logits = torch.zeros(2, 3)
    raises(XLTError, lambda: head_loss("sequence", logits, torch.tensor([0, 7])), "label 7", "num_labels")
    raises(XLTError, lambda: head_loss("spam", logits, torch.tensor([0, 1])), "kind", "'sequence'")
    assert head_loss("sequence", logits, torch.tensor([0, -100])).isfinite()


# ---- 5. token ids beyond the vocabulary ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [VOCAB, VOCAB + 1000, -1])
def test_input_ids_beyond_the_vocabulary_are_refused(gpt2, bad):
    ids, mask = batch([3, 2])
    ids[0, 1] = bad
    with no_compute(gpt2):
        raises(XLTError, lambda: gpt2(ids, mask), f"input_ids holds id {bad}", "this model's tokenizer")
        raises(XLTError, lambda: gpt2.generate(ids, mask, max_new_tokens=2), f"id {bad}", "tokenizer")


def test_label_ids_beyond_the_vocabulary_are_refused(t5, gpt2):
    ids, mask = batch([3, 2])
    labels = torch.tensor([[5, VOCAB], [5, -100]])
    with no_compute(t5):
        raises(XLTError, lambda: t5(ids, mask, labels=labels), f"labels holds id {VOCAB}", "-100")
    lm_labels = ids.clone()
    lm_labels[1, 0] = -7
    with no_compute(gpt2):
        raises(XLTError, lambda: gpt2(ids, mask, labels=lm_labels), "labels holds id -7", "tokenizer")


# ---- 6. shapes and dtypes of the inputs -----------------------------------------------------------------------


def test_labels_with_another_number_of_rows_are_refused(t5, gpt2, bert):
    ids, mask = batch([3, 2])
    with no_compute(t5):
        raises(
            XLTError, lambda: t5(ids, mask, labels=torch.ones(3, 2, dtype=torch.long)), "3 rows for a batch of 2", "one"
        )
    with no_compute(gpt2):
        raises(XLTError, lambda: gpt2(ids, mask, labels=ids[:1]), "1 rows for a batch of 2", "one label row")
    with no_compute(bert):
        raises(XLTError, lambda: bert(ids, mask, plan="cls/prompt", labels=torch.tensor([1])), "1 rows", "one")


def test_an_attention_mask_of_another_shape_is_refused(gpt2, t5):
    ids, mask = batch([3, 2])
    for m, extra in ((gpt2, {}), (t5, {"labels": ids})):
        with no_compute(m):
            raises(XLTError, lambda m=m, extra=extra: m(ids, mask[:, :2], **extra), r"shape \(2, 2\)", "pass the mask")
            raises(XLTError, lambda m=m, extra=extra: m(ids, mask * 2, **extra), "other than 0 and 1", "pass 1")


def test_input_ids_of_a_wrong_kind_are_refused(gpt2):
    ids, mask = batch([3, 2])
    with no_compute(gpt2):
        raises(XLTError, lambda: gpt2(ids.float(), mask), "dtype torch.float32", r"\.long\(\)")
        raises(XLTError, lambda: gpt2(ids[0], mask[0]), r"2-D", "unsqueeze")
        raises(XLTError, lambda: gpt2(ids.tolist(), mask), "got list", "return_tensors='pt'")
        raises(XLTError, lambda: gpt2(ids[:, :0], mask[:, :0]), "is empty", "at least one")


def test_decoder_labels_must_match_the_input(gpt2):
    ids, mask = batch([3, 2])
    with no_compute(gpt2):
        raises(XLTError, lambda: gpt2(ids, mask, labels=ids[:, :2]), "labels have shape", "the input ids themselves")


# ---- 7. generation past a position table -----------------------------------------------------------------------


def test_generation_past_the_position_table_is_refused(gpt2):
    limit = gpt2.host.max_positions(gpt2.base)  # 64 on the tiny GPT-2
    ids, mask = batch([50, 3])
    with no_compute(gpt2):
        message = raises(
            XLTError,
            lambda: gpt2.generate(ids, mask, plan="sk/prompt", max_new_tokens=20),
            rf"50 tokens plus 4 virtual tokens plus 20 new tokens exceeds this model's {limit} positions",
            "lower max_new_tokens to 10",
        )
        assert "truncate" in message
        raises(XLTError, lambda: gpt2.generate(ids, mask, plan="sk/prompt", max_length=80), "exceeds", "lower")
        raises(XLTError, lambda: gpt2.generate(ids, mask, max_new_tokens=0), "max_new_tokens", "positive integer")
    assert gpt2.generate(ids, mask, plan="sk/prompt", max_new_tokens=10).shape[0] == 2


def test_generate_refuses_inputs_it_builds_itself(gpt2):
    ids, mask = batch([3, 2])
    embeds = torch.zeros(2, 3, 32)
    with no_compute(gpt2):
        raises(XLTError, lambda: gpt2.generate(ids, mask, inputs_embeds=embeds), "inputs_embeds", "drop these")


# ---- 8. fp16 on the T5 family ------------------------------------------------------------------------------------


def test_fp16_on_t5_is_refused(tmp_path):
    base = tiny_base("mt5")
    base.config.save_pretrained(tmp_path)  # the refusal comes before any weights are read
    reason = "overflows"
    raises(UnsupportedError, lambda: XLTModel.from_pretrained(tmp_path, dtype=torch.float16), reason, "bfloat16")
    raises(UnsupportedError, lambda: XLTModel(base.half(), tiny_tokenizer()), reason, "bfloat16")
    XLTModel(tiny_base("mt5").to(torch.bfloat16))  # bf16 is fine


def test_a_model_class_without_what_the_host_needs_is_refused():
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=4, n_positions=64, bos_token_id=3, eos_token_id=1
    )
    raises(UnsupportedError, lambda: XLTModel(GPT2Model(config)), "no LM head", "from_pretrained")
    raises(UnsupportedError, lambda: XLTModel("gpt2"), "PreTrainedModel", "from_pretrained")


# ---- 9. inspect verifies the weights ---------------------------------------------------------------------------


def inspect_fails(capsys: pytest.CaptureFixture[str], directory: Path, problem: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(directory)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xlt: error: ") and "\n" not in err, err
    assert re.search(problem, err), err
    assert "re-save" in err


def test_inspect_refuses_missing_weights(saved, tmp_path, capsys):
    rep = copy_rep(saved, tmp_path / "rep")
    (rep / "rep.safetensors").unlink()
    inspect_fails(capsys, rep, "no rep.safetensors")


@pytest.mark.parametrize("keep", [4, 60, -10])
def test_inspect_and_load_refuse_truncated_weights(saved, tmp_path, capsys, gpt2, keep):
    rep = copy_rep(saved, tmp_path / "rep")
    data = (rep / "rep.safetensors").read_bytes()
    (rep / "rep.safetensors").write_bytes(data[:keep])
    inspect_fails(capsys, rep, "truncated|unreadable")
    raises(FormatError, lambda: gpt2.load_rep(rep, name="cut/prompt"), "truncated|unreadable", "re-save")


def test_inspect_refuses_a_bad_config_field(saved, tmp_path, capsys):
    rep = copy_rep(saved, tmp_path / "rep")
    edit_config(rep, num_virtual_tokens="ten")
    inspect_fails(capsys, rep, "num_virtual_tokens")


def test_inspect_refuses_truncated_peft_weights(tmp_path, capsys):
    from xlt.formats import export_peft_prompt

    m = new_model("gpt2")
    m.add_language("sk", PromptConfig(num_virtual_tokens=2, init="vocab"))
    out = export_peft_prompt(m, "sk/prompt", tmp_path / "peft")
    weights = out / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    inspect_fails(capsys, out, "truncated")


def test_nan_weights_are_refused(saved, tmp_path, gpt2):
    rep = copy_rep(saved, tmp_path / "rep")
    save_file({"body.embedding": torch.full((4, 32), float("nan"))}, str(rep / "rep.safetensors"))
    raises(FormatError, lambda: gpt2.load_rep(rep, name="nan/prompt"), "NaN or inf", "re-save")


def test_load_model_refuses_bad_threads_and_devices():
    from xlt.loading import load_model

    raises(XLTError, lambda: load_model("e5", threads=-1), "threads must be a positive integer", "leave it unset")
    raises(XLTError, lambda: load_model("e5", device="gpu7"), "not a torch device", "'cuda:N'")
