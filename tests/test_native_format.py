"""Files are data: a rep on disk is ``xlt_rep.json`` + ``rep.safetensors``; loading never
unpickles, refuses another base model, reports broken files as FormatError, and saving is atomic."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

import xlt.formats.native as native
from core_helpers import decoder_inputs, main_output, new_model, perturb, supports_invertible
from tiny_models import ARCHS, FAMILY, batch, tiny_base, tiny_tokenizer
from xlt import (
    BottleneckConfig,
    FingerprintError,
    FormatError,
    HeadConfig,
    LoRAConfig,
    PromptConfig,
    XLTModel,
)

KINDS = {
    "prompt": lambda m: m.add_language("sk", PromptConfig(4, init="text", init_text="w3 w9")),
    "pfeiffer": lambda m: m.add_language("sk", BottleneckConfig(reduction_factor=4)),
    "houlsby": lambda m: m.add_task("nli", BottleneckConfig.houlsby(reduction_factor=4)),
    "lora": lambda m: m.add_task("nli", LoRAConfig(rank=2, target_modules=[])),
    "invertible": lambda m: m.add_language("sk", BottleneckConfig.madx(reduction_factor=4)),
    "head": lambda m: m.add_task("cls", LoRAConfig(rank=2), head=HeadConfig("token", num_labels=3)),
}
CASES = [
    (arch, kind)
    for arch in ARCHS
    for kind in KINDS
    if (kind != "invertible" or supports_invertible(arch)) and (kind != "head" or FAMILY[arch] == "encoder")
]


def outputs(m, arch, plan):
    ids, mask = batch([5, 3])
    return main_output(arch, m(ids, mask, plan=plan, **decoder_inputs(arch, 2)))


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("loading a rep unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize(("arch", "kind"), CASES)
def test_round_trip(arch, kind, tmp_path, no_unpickling):
    m = new_model(arch)
    rep = KINDS[kind](m)
    perturb(m)
    before = outputs(m, arch, rep.name)
    saved = m.save_rep(rep.name, tmp_path / "rep")
    assert sorted(p.name for p in saved.iterdir()) == ["rep.safetensors", "xlt_rep.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no temporary directory left behind
    fresh = new_model(arch)
    loaded = fresh.load_rep(saved)
    assert loaded.name == rep.name and loaded.kind == rep.kind and loaded.role == rep.role
    assert loaded.config == rep.config
    assert loaded.info.fingerprint == m.fingerprint
    for (k1, v1), (k2, v2) in zip(rep.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2), k1
    assert torch.equal(outputs(fresh, arch, rep.name), before)
    # and it was not a no-op: the base alone computes something else
    assert not torch.equal(outputs(fresh, arch, "base"), before)


def test_config_file_is_plain_data(tmp_path):
    m = new_model("bert")
    head = HeadConfig(num_labels=3, labels=["y", "n", "m"])
    m.add_task("nli", BottleneckConfig(reduction_factor=4), head=head)
    m.save_rep("nli/bottleneck", tmp_path / "r")
    data = json.loads((tmp_path / "r" / "xlt_rep.json").read_text())
    assert data["format"] == "xlt-rep" and data["format_version"] == 1
    assert (data["name"], data["kind"], data["role"], data["task"], data["language"]) == (
        "nli/bottleneck",
        "bottleneck",
        "task",
        "nli",
        None,
    )
    assert data["config"]["reduction_factor"] == 4
    assert data["head"]["labels"] == ["y", "n", "m"]
    assert data["fingerprint"] == m.fingerprint.to_dict()
    assert data["fingerprint"]["name"] == "tiny-bert" and data["fingerprint"]["hidden_size"] == 32
    assert set(data["provenance"]) >= {"xlt_version", "created"}
    tensors = load_file(str(tmp_path / "r" / "rep.safetensors"))
    assert set(tensors) == set(m.rep("nli/bottleneck").state_dict())


def test_load_under_another_name(tmp_path):
    m = new_model("gpt2")
    m.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab"))
    m.save_rep("sk/prompt", tmp_path / "sk")
    rep = m.load_rep(tmp_path / "sk", name="sk2/prompt")
    assert rep.name == "sk2/prompt" and set(m.reps) == {"sk/prompt", "sk2/prompt"}
    assert torch.equal(rep.body.embedding, m.rep("sk/prompt").body.embedding)


@pytest.mark.parametrize("arch", ["t5", "bert", "llama"])
def test_another_base_model(arch, tmp_path):
    m = new_model(arch)
    m.add_task("nli", BottleneckConfig(reduction_factor=4))
    perturb(m)
    m.save_rep("nli/bottleneck", tmp_path / "nli")
    other = XLTModel(tiny_base(arch, seed=3), tiny_tokenizer(), name="my-finetune")
    with pytest.raises(FingerprintError, match=r"'tiny-.*', not 'my-finetune'"):
        other.load_rep(tmp_path / "nli")
    assert not other.reps
    # same shape, and the user says the weights are the same: allowed
    rep = other.load_rep(tmp_path / "nli", allow_other_base=True)
    for key, value in m.rep("nli/bottleneck").state_dict().items():
        assert torch.equal(rep.state_dict()[key], value)
    assert (
        max(
            float((a - b).abs().max())
            for a, b in zip(
                main_output(arch, other(*batch([4]), plan="nli/bottleneck", **decoder_inputs(arch, 1))),
                main_output(arch, other(*batch([4]), plan="base", **decoder_inputs(arch, 1))),
                strict=True,
            )
        )
        > 1e-4
    )


@pytest.fixture
def saved(tmp_path):
    m = new_model("bert")
    m.add_language("sk", BottleneckConfig(reduction_factor=4))
    path = m.save_rep("sk/bottleneck", tmp_path / "sk")
    return path


def rewrite_json(path, change):
    data = json.loads((path / "xlt_rep.json").read_text())
    change(data)
    (path / "xlt_rep.json").write_text(json.dumps(data))


def rewrite_tensors(path, change):
    weights = path / "rep.safetensors"
    save_file(change(load_file(str(weights))), str(weights))


def write_weights(path, data):
    (path / "rep.safetensors").write_bytes(data)


def narrower(tensors):
    return {k: torch.zeros(3, *v.shape[1:]) if k.endswith("down.weight") else v for k, v in tensors.items()}


BROKEN = {
    "no directory": lambda p: p.rename(p.with_name("elsewhere")),
    "no config": lambda p: (p / "xlt_rep.json").unlink(),
    "no weights": lambda p: (p / "rep.safetensors").unlink(),
    "config not json": lambda p: (p / "xlt_rep.json").write_text("{not json"),
    "config not utf-8": lambda p: (p / "xlt_rep.json").write_bytes(b"\xff\xfe\x00{"),
    "config a list": lambda p: (p / "xlt_rep.json").write_text("[1, 2]"),
    "config of another format": lambda p: rewrite_json(p, lambda d: d.update(format="peft")),
    "config without kind": lambda p: rewrite_json(p, lambda d: d.pop("kind")),
    "unknown kind": lambda p: rewrite_json(p, lambda d: d.update(kind="hypernetwork")),
    "unknown option": lambda p: rewrite_json(p, lambda d: d["config"].update(gating=True)),
    "bad role": lambda p: rewrite_json(p, lambda d: d.update(role="domain")),
    "broken fingerprint": lambda p: rewrite_json(p, lambda d: d.update(fingerprint={"name": "x"})),
    "weights truncated": lambda p: write_weights(p, (p / "rep.safetensors").read_bytes()[:50]),
    "weights garbage": lambda p: write_weights(p, b"\x00" * 64),
    "weights a pickle": lambda p: write_weights(p, pickle.dumps({"a": 1})),
    "tensor missing": lambda p: rewrite_tensors(p, lambda t: {k: t[k] for k in t if "0_ffn.up" not in k}),
    "tensor extra": lambda p: rewrite_tensors(p, lambda t: {**t, "body.blocks.extra": torch.zeros(2)}),
    "tensor of another shape": lambda p: rewrite_tensors(p, narrower),
    "other reduction factor": lambda p: rewrite_json(p, lambda d: d["config"].update(reduction_factor=8)),
}


@pytest.mark.parametrize("problem", list(BROKEN))
def test_broken_files_are_format_errors(saved, problem, no_unpickling):
    BROKEN[problem](saved)
    m = new_model("bert")
    with pytest.raises(FormatError):
        m.load_rep(saved)
    assert not m.reps


def test_saving_is_atomic(tmp_path, monkeypatch):
    m = new_model("bert")
    m.add_language("sk", BottleneckConfig(reduction_factor=4))
    target = m.save_rep("sk/bottleneck", tmp_path / "sk")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    perturb(m)

    def failing_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(native, "save_file", failing_save_file)
    with pytest.raises(OSError, match="disk full"):
        m.save_rep("sk/bottleneck", target)
    # the previous directory is intact and nothing else is left behind
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["sk"]
    # a first save that fails leaves no directory at all
    with pytest.raises(OSError, match="disk full"):
        m.save_rep("sk/bottleneck", tmp_path / "new")
    assert [p.name for p in tmp_path.iterdir()] == ["sk"]
    monkeypatch.undo()
    # the loaded rep is the old one; a successful save then replaces it
    fresh = new_model("bert")
    old = fresh.load_rep(target)
    assert not torch.equal(
        old.body.blocks["encoder_0_ffn"].up.weight,
        m.rep("sk/bottleneck").body.blocks["encoder_0_ffn"].up.weight,
    )
    m.save_rep("sk/bottleneck", target)
    assert [p.name for p in tmp_path.iterdir()] == ["sk"]
    newer = new_model("bert").load_rep(target)
    assert torch.equal(
        newer.body.blocks["encoder_0_ffn"].up.weight,
        m.rep("sk/bottleneck").body.blocks["encoder_0_ffn"].up.weight,
    )


def test_loaded_prompt_keeps_its_trained_values(tmp_path):
    """A text-initialised prompt is saved after training: loading must give the trained rows, not the init."""
    m = new_model("t5")
    m.add_language("sk", PromptConfig(num_virtual_tokens=4, init="text", init_text="w3 w9"))
    perturb(m)
    m.save_rep("sk/prompt", tmp_path / "sk")
    loaded = new_model("t5").load_rep(tmp_path / "sk")
    assert torch.equal(loaded.body.embedding, m.rep("sk/prompt").body.embedding)
    assert loaded.config.init == "text"
