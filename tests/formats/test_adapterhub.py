"""AdapterHub bottleneck adapters <-> xlt bottlenecks. Oracle tests run where ``adapters`` is installed (the
transformers 4.57 environment); the format tests without it run everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from oracle_inputs import inputs, xlt_out

from tiny_models import FAMILY, tiny_base
from xlt import BottleneckConfig, FormatError, PromptConfig, UnsupportedError, XLTError, XLTModel
from xlt.formats import detect_format, export_adapterhub, import_adapterhub, import_rep

TOL = 1e-5
ORACLE_ARCHS = ["bert", "xlm-roberta", "t5", "mt5", "gpt2", "llama"]


@pytest.fixture(scope="module")
def adapters():
    return pytest.importorskip("adapters")


def hub_out(base, arch: str, setup) -> torch.Tensor:
    ids, mask, dec = inputs()
    base.set_active_adapters(setup)
    with torch.no_grad():
        if FAMILY[arch] == "encoder_decoder":
            return base(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        out = base(input_ids=ids, attention_mask=mask)
    return out.logits if FAMILY[arch] == "decoder" else out.last_hidden_state


def max_diff(a: torch.Tensor, b: torch.Tensor, arch: str) -> float:
    assert a.shape == b.shape
    diff = (a - b).abs()
    if FAMILY[arch] != "encoder_decoder":
        diff = diff[inputs()[1].bool()]
    return float(diff.max())


def hub_base(adapters, arch: str):
    base = tiny_base(arch)
    adapters.init(base)
    return base.eval()


def add_random_adapter(base, name: str, config: str, seed: int) -> None:
    """AdapterHub's init is near-identity (std 0.02, zero biases): add noise so a dropped adapter shows."""
    base.add_adapter(name, config=config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, param in base.named_parameters():
            if f".adapters.{name}." in key:
                param.add_(torch.randn(param.shape, generator=g) * 0.3)
    base.eval()


@pytest.mark.oracle
@pytest.mark.parametrize("config", ["seq_bn", "double_seq_bn"])
@pytest.mark.parametrize("arch", ORACLE_ARCHS)
def test_adapterhub_adapter_imports_to_same_outputs(adapters, arch, config, tmp_path):
    oracle = hub_base(adapters, arch)
    add_random_adapter(oracle, "sk", config, seed=1)
    oracle.save_adapter(str(tmp_path / "sk"), "sk", use_safetensors=True)
    assert detect_format(tmp_path / "sk") == "adapterhub"
    model = XLTModel(tiny_base(arch))
    rep = import_rep(model, tmp_path / "sk", role="language", language="sk")
    assert rep.name == "sk/bottleneck" and rep.config.mh_adapter == (config == "double_seq_bn")
    ours = xlt_out(model, "sk/bottleneck")
    diff = max_diff(ours, hub_out(oracle, arch, "sk"), arch)
    print(f"adapterhub->xlt {arch} {config}: max abs diff {diff:.2e}")
    assert diff < TOL
    assert (ours - xlt_out(model, None)).abs().max() > 1e-3


@pytest.mark.oracle
@pytest.mark.parametrize("arch", ["xlm-roberta", "mt5", "gpt2"])
def test_plan_stacking_equals_madx_stack(adapters, arch, tmp_path):
    from adapters.composition import Stack

    oracle = hub_base(adapters, arch)
    add_random_adapter(oracle, "lang", "seq_bn", seed=1)
    add_random_adapter(oracle, "task", "double_seq_bn", seed=2)
    for name in ("lang", "task"):
        oracle.save_adapter(str(tmp_path / name), name)  # pytorch_adapter.bin, read with weights_only=True
    model = XLTModel(tiny_base(arch))
    import_adapterhub(model, tmp_path / "lang", role="language", language="sk")
    import_adapterhub(model, tmp_path / "task", role="task", task="nli")
    ours = xlt_out(model, "sk/bottleneck+nli/bottleneck")
    diff = max_diff(ours, hub_out(oracle, arch, Stack("lang", "task")), arch)
    print(f"Stack(lang, task) {arch}: max abs diff {diff:.2e}")
    assert diff < TOL
    assert (ours - xlt_out(model, "nli/bottleneck+sk/bottleneck")).abs().max() > 1e-4  # order matters


@pytest.mark.oracle
@pytest.mark.parametrize("arch", ["bert", "t5", "llama"])
def test_xlt_bottleneck_exports_to_adapterhub(adapters, arch, tmp_path):
    model = XLTModel(tiny_base(arch))
    rep = model.add_task("nli", BottleneckConfig.houlsby(reduction_factor=4, scaling=0.5))
    with torch.no_grad():
        for p in rep.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(4)) * 0.3)
    directory = export_adapterhub(model, "nli/bottleneck", tmp_path / "hub")
    for use_safetensors in (False, True):
        oracle = hub_base(adapters, arch)
        info: dict = {}
        name = oracle.load_adapter(str(directory), use_safetensors=use_safetensors, loading_info=info)
        assert name == "nli_bottleneck" and not info["missing_keys"] and not info["unexpected_keys"]
        diff = max_diff(xlt_out(model, "nli/bottleneck"), hub_out(oracle.eval(), arch, name), arch)
        print(f"xlt->adapterhub {arch} (safetensors={use_safetensors}): max abs diff {diff:.2e}")
        assert diff < TOL


@pytest.mark.oracle
@pytest.mark.parametrize("arch", ["bert", "mt5", "gpt2"])
def test_seq_bn_parameter_count_equals_adapterhub(adapters, arch):
    oracle = hub_base(adapters, arch)
    oracle.add_adapter("seq_bn", config="seq_bn")
    theirs = sum(p.numel() for key, p in oracle.named_parameters() if ".adapters.seq_bn." in key)
    ours = XLTModel(tiny_base(arch)).add_language("sk", BottleneckConfig()).num_parameters()
    assert ours == theirs > 0


# ---- the format alone: runs without the adapters library ------------------------------------------------


def exported(tmp_path: Path, arch: str = "bert", **config) -> tuple[XLTModel, Path]:
    model = XLTModel(tiny_base(arch))
    rep = model.add_language("sk", BottleneckConfig(reduction_factor=4, **config))
    with torch.no_grad():
        for p in rep.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(4)) * 0.3)
    return model, export_adapterhub(model, "sk/bottleneck", tmp_path / "hub")


def edit_config(directory: Path, **changes) -> Path:
    path = directory / "adapter_config.json"
    data = json.loads(path.read_text())
    data["config"].update(changes)
    path.write_text(json.dumps(data))
    return directory


@pytest.mark.parametrize("arch", ["t5", "gpt2", "llama", "xlm-roberta"])
def test_round_trip_through_the_adapterhub_layout(arch, tmp_path):
    model, directory = exported(tmp_path, arch, non_linearity="swish", residual_before_ln=False)
    assert (directory / "adapter.safetensors").is_file() and (directory / "pytorch_adapter.bin").is_file()
    other = XLTModel(tiny_base(arch))
    import_adapterhub(other, directory, role="language", language="sk")
    assert float((xlt_out(model, "sk/bottleneck") - xlt_out(other, "sk/bottleneck")).abs().max()) == 0.0
    (directory / "adapter.safetensors").unlink()  # the pickle alone, read with weights_only=True
    again = import_adapterhub(XLTModel(tiny_base(arch)), directory, role="task", task="x", name="x/hub")
    assert again.config == other.rep("sk/bottleneck").config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use_gating": True}, "gating"),
        ({"phm_layer": True}, "PHM"),
        ({"ln_after": True}, "adapter layer norm"),
        ({"ln_before": True}, "adapter layer norm"),
        ({"inv_adapter": "nice", "inv_adapter_reduction_factor": 2}, "invertible adapter"),
        ({"cross_adapter": True}, "cross-attention"),
        ({"is_parallel": True}, "parallel"),
        ({"original_ln_after": False}, "original_ln_after=False"),
        ({"leave_out": [0]}, "leave_out"),
        ({"stochastic_depth": 0.1}, "stochastic depth"),
        ({"scaling": "learned"}, "scaling='learned'"),
        ({"residual_before_ln": "post_add"}, "post_add"),
        ({"reduction_factor": {"0": 4, "default": 8}}, "per-layer reduction factors"),
        ({"architecture": "prefix_tuning"}, "'prefix_tuning' adapters are not supported"),
        ({"architecture": "lora"}, "'lora' adapters are not supported"),
        ({"new_option": 1}, "unknown AdapterHub option"),
    ],
)
def test_what_xlt_cannot_reproduce_raises(change, message, tmp_path):
    _, directory = exported(tmp_path)
    edit_config(directory, **change)
    with pytest.raises((UnsupportedError, FormatError), match=message):
        import_adapterhub(XLTModel(tiny_base("bert")), directory, role="language", language="sk")


def test_weights_that_do_not_fit_raise(tmp_path):
    from safetensors.torch import load_file, save_file

    _, directory = exported(tmp_path)
    weights = directory / "adapter.safetensors"
    state = load_file(str(weights))
    gate = "encoder.layer.0.output.adapters.sk_bottleneck.gate.weight"
    save_file({**state, gate: torch.zeros(1, 32)}, str(weights))
    with pytest.raises(FormatError, match="match no bottleneck block"):
        import_adapterhub(XLTModel(tiny_base("bert")), directory, role="language", language="sk")
    save_file({k: v for k, v in state.items() if "layer.1." not in k}, str(weights))
    with pytest.raises(FormatError, match="lacks 4 tensor"):
        import_adapterhub(XLTModel(tiny_base("bert")), directory, role="language", language="sk")
    save_file(state, str(weights))
    edit_config(directory, reduction_factor=8)
    with pytest.raises(FormatError, match="the files do not match"):
        import_adapterhub(XLTModel(tiny_base("bert")), directory, role="language", language="sk")
    with pytest.raises(FormatError, match="saved for a bert model"):
        import_adapterhub(XLTModel(tiny_base("xlm-roberta")), directory, role="language", language="sk")


def test_heads_and_other_bases(tmp_path):
    _, directory = exported(tmp_path)
    sk = {"role": "language", "language": "sk"}
    head = {"config": {"head_type": "classification", "num_labels": 3}, "name": "sk_bottleneck"}
    (directory / "head_config.json").write_text(json.dumps(head))
    with pytest.raises(UnsupportedError, match="ignore_head=True"):
        import_adapterhub(XLTModel(tiny_base("bert")), directory, role="language", language="sk")
    import_adapterhub(XLTModel(tiny_base("bert")), directory, **sk, ignore_head=True)
    data = json.loads((directory / "adapter_config.json").read_text())
    data["model_name"] = "bert-base-multilingual-cased"
    (directory / "adapter_config.json").write_text(json.dumps(data))
    with pytest.raises(FormatError, match="allow_other_base=True"):
        import_adapterhub(XLTModel(tiny_base("bert")), directory, **sk, ignore_head=True)


def test_export_refusals(tmp_path):
    model = XLTModel(tiny_base("gpt2"))
    model.add_language("sk", BottleneckConfig.madx(reduction_factor=4))
    model.add_language("de", PromptConfig(num_virtual_tokens=2, init="random"))
    with pytest.raises(UnsupportedError, match="invertible adapter"):
        export_adapterhub(model, "sk/bottleneck", tmp_path / "inv")
    with pytest.raises(XLTError, match="only bottleneck reps"):
        export_adapterhub(model, "de/prompt", tmp_path / "prompt")
    assert not (tmp_path / "inv").exists()
