"""Scale-out: the same language run under ``accelerate launch`` on 2 CPU processes (DDP over gloo), with no code
change, matches a 1-process run of the same global batch; a 2-process run that fails and is run again resumes
exactly. ``accelerate launch --cpu`` starts one process unless MPI is set up; ``--multi_gpu`` goes through
torch.distributed.run, and xlt's loop asks Accelerate for the CPU when no GPU is visible (so gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import training_helpers as th

from xlt.training.language import train_language

SCRIPT = Path(__file__).parent / "run_language.py"
SRC = Path(__file__).parents[2] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(specs: list[dict]) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("accelerate")
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(free_port()),
        str(SCRIPT),
        json.dumps(specs),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)


def test_two_processes_match_one_and_resume_exactly(tmp_path):
    spec = {
        "arch": "gpt2",
        "kind": "bottleneck",
        "corpus": str(th.lm_corpus(tmp_path / "sk.txt")),
        "steps": 8,
        "batch_size": 8,  # global: 2 micro-batches of 4 rows, 2 rows per process
        "gradient_accumulation": 2,
        "checkpoint_every": 4,
        "eval_every": 4,
        "lr": 0.01,
        "max_length": 16,
    }
    whole, resumed, single = tmp_path / "ddp", tmp_path / "ddp-resumed", tmp_path / "single"
    # the second run fails in its 11th micro-batch (step 6, after the checkpoint at step 4) and is run again
    done = launch_two_processes([{**spec, "out": str(whole)}, {**spec, "out": str(resumed), "crash_at": 11}])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("finished") == 2  # both processes ran to the end
    assert done.stdout.count("crashed; running again") == 2
    assert done.stdout.count(f"resuming from step 4 ({resumed / 'checkpoint'})") == 2
    assert done.stdout.count("step 8: loss") == 2  # evaluation lines: once per run, from the main process

    model, run = th.language_run({**spec, "out": str(single)})
    train_language(model, run, log=th.silent)

    two, again, one = (th.rep_tensors(d / "rep") for d in (whole, resumed, single))
    assert two.keys() == again.keys() == one.keys()
    assert all(torch.equal(two[k], again[k]) for k in two)  # resume under DDP is exact
    difference = max(float((two[k] - one[k]).abs().max()) for k in one)
    scale = max(float(one[k].abs().max()) for k in one)
    print(f"max |2 processes - 1 process| = {difference:.3g} (weights up to {scale:.3g})")
    assert difference < 1e-5
    fresh = model.rep("sk/bottleneck").state_dict()
    assert all(torch.equal(fresh[k].cpu(), one[k]) for k in one)
    r2, r1 = (json.loads((d / "result.json").read_text()) for d in (whole, single))
    assert r2["tokens"] == r1["tokens"] > 0  # counted over both processes
    assert [h["loss"] for h in r2["history"]] == pytest.approx([h["loss"] for h in r1["history"]], rel=1e-5)
    assert r2["steps"] == r1["steps"] == 8
