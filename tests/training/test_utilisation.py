"""Utilisation: FLOPs counted on a step (a frozen weight costs its forward and the activation gradient, never a
weight gradient), the measured dense peak, and a training run's report of both."""

from __future__ import annotations

import json

import pytest
import torch
import training_helpers as th

from xlt.training.language import train_language
from xlt.training.utilisation import Utilisation, counting, dense_peak, utilisation


@pytest.mark.parametrize("frozen", [True, False])
def test_a_frozen_weight_costs_no_weight_gradient(frozen):
    layer = torch.nn.Linear(32, 16, bias=False)
    layer.weight.requires_grad_(not frozen)
    x = torch.randn(8, 32, requires_grad=True)
    with counting() as flops:
        layer(x).sum().backward()
    forward = 2 * 8 * 32 * 16
    # forward + the input's gradient (+ the weight's gradient when it is trained)
    assert flops() == forward * (2 if frozen else 3)


def test_the_dense_peak_is_measured_once_per_device_and_dtype():
    first = dense_peak(torch.device("cpu"), torch.float32)
    assert first > 1e8  # any CPU multiplies faster than 0.1 GFLOP/s
    assert dense_peak(torch.device("cpu"), torch.float32) == first  # cached, not measured again


def test_utilisation_arithmetic():
    u = Utilisation(flops_per_token=2e9, tokens_per_second=50, peak_flops=4e11, dtype="fp32", device="CPU")
    assert u.flops_per_second == 1e11 and u.fraction == 0.25
    assert "25.0% of CPU's measured fp32 peak" in u.line()
    assert utilisation(1.0, 1.0, torch.device("cpu"), "bf16").dtype == "bf16"


def test_a_training_run_reports_its_utilisation(tmp_path, capsys):
    run = th.prompt_run(tmp_path, th.quick(steps=3, eval_every=0, progress=True))
    train_language(th.model("gpt2"), run, log=th.silent)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    used = next(v for k, v in _walk(result) if k == "utilisation")
    assert used["flops_per_token"] > 0 and used["peak_flops"] > 0
    assert used["flops_per_second"] == pytest.approx(used["fraction_of_peak"] * used["peak_flops"])
    assert 0 < used["fraction_of_peak"] < 2 and used["dtype"] == "fp32" and used["device"].startswith("CPU")
    assert "peak=" in capsys.readouterr().err  # the progress bar's summary


def _walk(data):
    if isinstance(data, dict):
        for key, value in data.items():
            yield key, value
            yield from _walk(value)
