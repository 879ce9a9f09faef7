"""Precision: bf16 autocast runs on the training device, CPU or GPU (also after an fp32 run in the same process);
fp16 is refused."""

from __future__ import annotations

import json

import pytest
import torch
import training_helpers as th

import xlt.training.language as language_module
import xlt.training.precision as precision_module
from xlt.errors import XLTError
from xlt.records import jsonable
from xlt.training.corpora import CorpusConfig
from xlt.training.language import LanguageRun, train_language
from xlt.training.lm_objective import ObjectiveConfig
from xlt.training.loop import TrainConfig

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # where Accelerate trains


@pytest.mark.parametrize("precision", ["fp16", "float16", "fp64", "bf32"])
def test_other_precisions_are_refused(precision):
    with pytest.raises(XLTError) as excinfo:
        TrainConfig(precision=precision)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert repr(precision) in message and "'bf16'" in message and "'fp32'" in message
    assert "NaN on mT5" in message


def run_with(tmp_path, name, arch, kind, precision, monkeypatch):
    """A short run; returns (autocast dtypes seen in the training forward, result.json, saved rep)."""
    real = language_module.train
    seen: list[torch.dtype | None] = []

    def spying(**kwargs):
        loss_fn = kwargs["loss_fn"]

        def loss(module, batch):
            seen.append(torch.get_autocast_dtype(DEVICE) if torch.is_autocast_enabled(DEVICE) else None)
            return loss_fn(module, batch)

        return real(**{**kwargs, "loss_fn": loss})

    monkeypatch.setattr(language_module, "train", spying)
    corpus = th.lm_corpus(tmp_path / "sk.txt")
    run = LanguageRun(
        language="sk",
        kind=kind,
        corpus=CorpusConfig(files=[str(corpus)], validation_fraction=0.05),
        output_dir=tmp_path / name,
        rep=th.rep_options(kind),
        objective=ObjectiveConfig(max_length=24),
        train=th.quick(steps=8, batch_size=8, eval_every=4, precision=precision, lr=0.3 if kind == "prompt" else 0.01),
    )
    rep_dir = train_language(th.model(arch), run, log=th.silent)
    return set(seen), json.loads((tmp_path / name / "result.json").read_text()), th.rep_tensors(rep_dir)


@pytest.mark.parametrize(("arch", "kind"), [("t5", "prompt"), ("gpt2", "lora")])
def test_bf16_runs_after_an_fp32_run(tmp_path, monkeypatch, arch, kind):
    dtypes, fp32, fp32_rep = run_with(tmp_path, "fp32", arch, kind, "fp32", monkeypatch)
    assert dtypes == {None}
    # a second Accelerator in the same process, with another precision
    dtypes, bf16, bf16_rep = run_with(tmp_path, "bf16", arch, kind, "bf16", monkeypatch)
    assert dtypes == {torch.bfloat16}  # the training forward runs under bf16 autocast
    history = [h["loss"] for h in bf16["history"]]
    assert all(map(torch.isfinite, map(torch.tensor, history)))
    assert history[-1] < history[0] + 0.05
    assert all(v.dtype == torch.float32 for v in bf16_rep.values())  # the trained weights stay fp32
    assert any(not torch.equal(bf16_rep[k], fp32_rep[k]) for k in fp32_rep)  # bf16 did change the arithmetic
    # the two precisions agree to bf16 accuracy
    assert history == pytest.approx([h["loss"] for h in fp32["history"]], rel=0.05)


@pytest.mark.parametrize(
    ("flags", "native"),
    [({"avx2", "fma"}, False), ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True), ({"asimd", "bf16"}, True)],
)
def test_auto_is_bf16_only_on_a_cpu_with_bf16_matrix_instructions(monkeypatch, flags, native):
    monkeypatch.setattr(precision_module, "_cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision_module.native_bf16("cpu") is native
    assert precision_module.resolve("auto") == ("bf16" if native else "fp32")
    assert TrainConfig().precision == ("bf16" if native else "fp32")  # resolved where the settings are read
    assert TrainConfig(precision="fp32").precision == "fp32"  # exact reproduction stays available


@pytest.mark.parametrize(("capability", "native"), [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_auto_is_bf16_on_a_gpu_with_bf16_tensor_cores(monkeypatch, capability, native):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(precision_module, "_cpu_flags", lambda: frozenset())
    assert precision_module.resolve("auto") == ("bf16" if native else "fp32")


def test_this_machines_default_is_recorded_resolved():
    """A run records the precision it computed in, never "auto": a run directory made before the default became
    "auto" on a machine without native bf16 (this one) keeps matching its record."""
    config = TrainConfig()
    assert config.precision == precision_module.resolve("auto") and config.precision != "auto"
    assert jsonable(config)["precision"] == config.precision
    if not precision_module.native_bf16(DEVICE):
        assert config.precision == "fp32"


@pytest.mark.parametrize(("precision", "enabled"), [("fp32", False), ("bf16", True)])
def test_evaluation_autocast_follows_the_resolved_precision(precision, enabled):
    with precision_module.autocast(precision, "cpu"):
        assert torch.is_autocast_enabled("cpu") is enabled
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == (torch.bfloat16 if enabled else torch.float32)
