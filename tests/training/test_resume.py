"""Exact resume: a language run killed with SIGKILL after its first checkpoint, run again with the same config,
ends with exactly the weights of an uninterrupted run (dropout active, so the RNG state must be restored too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import training_helpers as th

from xlt.reps import get_kind
from xlt.training.language import train_language

SCRIPT = Path(__file__).parent / "run_language.py"
SRC = Path(__file__).parents[2] / "src"


def child_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def kill_after_first_checkpoint(spec: dict, out: Path) -> int:
    """Start the run in a subprocess, SIGKILL it once a checkpoint exists; return the checkpoint's step."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), json.dumps({**spec, "out": str(out), "sleep": 0.1})],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    trainer = out / "checkpoint" / "trainer.json"
    deadline = time.monotonic() + 240
    try:
        while not trainer.is_file():
            if proc.poll() is not None:
                pytest.fail(f"the run ended before its first checkpoint:\n{proc.stdout.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 240 s")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "result.json").exists() and not (out / "rep").exists()  # killed mid-run
    return json.loads(trainer.read_text())["step"]


@pytest.mark.parametrize(
    ("arch", "kind", "extra"),
    [
        # a soft prompt with Adafactor; dropout in the frozen base
        ("t5", "prompt", {"base_dropout": 0.1, "rep": th.rep_options("prompt")}),
        # an adapter with AdamW and its own dropout
        ("gpt2", "bottleneck", {"rep": {"dropout": 0.1}, "lr": 0.01}),
    ],
)
def test_resume_after_kill_equals_uninterrupted_run(tmp_path, arch, kind, extra):
    spec = {
        "arch": arch,
        "kind": kind,
        "corpus": str(th.lm_corpus(tmp_path / "sk.txt")),
        "steps": 12,
        "batch_size": 4,
        "gradient_accumulation": 2,
        "checkpoint_every": 4,
        "eval_every": 4,
        **extra,
    }
    killed = tmp_path / "killed"
    step = kill_after_first_checkpoint(spec, killed)
    assert step in (4, 8)

    lines: list[str] = []
    model, run = th.language_run({**spec, "out": str(killed)})
    train_language(model, run, log=lines.append)
    assert f"resuming from step {step} ({killed / 'checkpoint'})" in lines

    whole = tmp_path / "whole"
    model, run = th.language_run({**spec, "out": str(whole)})
    train_language(model, run, log=th.silent)

    resumed, reference = th.rep_tensors(killed / "rep"), th.rep_tensors(whole / "rep")
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), key
    a, b = (json.loads((d / "result.json").read_text()) for d in (killed, whole))
    assert a["history"] == b["history"] and a["best_step"] == b["best_step"] and a["steps"] == b["steps"] == 12
    assert a["tokens"] == b["tokens"]
    model, run = th.language_run({**spec, "out": str(tmp_path / "fresh")})
    fresh = model.add_language("sk", get_kind(kind).config_cls.from_dict(dict(run.rep)))
    assert any(not torch.equal(v, reference[k]) for k, v in fresh.state_dict().items())  # the runs did train
