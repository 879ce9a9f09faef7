"""The same matrix under each executor gives the same results as ``local``; a worker or job killed mid-job is
retried and resumes; a run interrupted under one executor is finished under another."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from executor_helpers import SILENT, Killer, metrics, small_world, stage

from xlt.cli import main
from xlt.matrix import load_config, run_matrix
from xlt.matrix.report import results_csv
from xlt.matrix.status import status
from xlt.matrix.store import read_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run under ``local``."""
    root = tmp_path_factory.mktemp("reference")
    spec = small_world(root)
    run_matrix(load_config(spec), log=SILENT, report=False)
    return spec, metrics(root / "out")


def _reference(root: Path, configurations: tuple[str, ...]):
    spec = small_world(root, "gpt2", ("en", "de"), configurations)
    run_matrix(load_config(spec), log=SILENT, report=False)
    return spec, metrics(root / "out")


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    """A smaller grid (GPT-2, which needs no LM head; en and de; TA and SLP+TA): two language, two task and two
    evaluation jobs."""
    return _reference(tmp_path_factory.mktemp("small"), ("TA", "SLP+TA"))


@pytest.fixture(scope="module")
def smallest_reference(tmp_path_factory):
    """The smallest (TA alone: a task and an evaluation job) for executors whose every job is a new process."""
    return _reference(tmp_path_factory.mktemp("smallest"), ("TA",))


def _spec(reference, out: Path, **changes):
    spec, _ = reference
    return {**spec, "output_dir": str(out), **changes}


def _run_with_a_kill(spec) -> tuple[Killer, list[str]]:
    """Run the matrix while a Killer SIGKILLs one task job's worker mid-job."""
    killer = Killer(Path(spec["output_dir"]))
    killer.start()
    messages: list[str] = []
    run_matrix(load_config(spec), log=messages.append, report=False)
    killer.stop.set()
    return killer, messages


def test_ray_equals_local_with_a_worker_killed_mid_job(small_reference, ray_cluster, tmp_path):
    reference = small_reference
    out = tmp_path / "out"
    spec = _spec(reference, out, executor="ray", executor_options={"cpus_per_job": 1, "max_retries": 2})
    killer, _ = _run_with_a_kill(spec)
    assert killer.killed is not None, "no worker was killed mid-job"
    assert metrics(out) == reference[1]  # resumed from its checkpoint: the same weights, the same cells
    jobs = stage(out, "task")
    assert jobs[killer.killed]["attempts"] == 2 and jobs[killer.killed]["state"] == "done"
    every = [*stage(out, "language").values(), *jobs.values(), *stage(out, "evaluation").values()]
    assert all(j["devices"] == "" for j in every)  # CPU-only jobs see no GPU
    assert len({j["worker"] for j in every}) >= 2  # side by side
    assert ray_cluster.is_initialized()  # a cluster the run did not start is left running
    rows = [r for r in (out / "results.jsonl").read_text().splitlines() if r]
    assert all('"executor": "ray"' in r for r in rows)


def test_slurm_local_backend_equals_local_with_a_job_killed_mid_job(smallest_reference, tmp_path):
    pytest.importorskip("submitit")
    reference = smallest_reference
    out = tmp_path / "out"
    options = {"cluster": "local", "max_jobs": 2, "retries": 1, "poll_s": 0.2}
    spec = _spec(reference, out, executor="slurm", executor_options=options)
    killer, messages = _run_with_a_kill(spec)
    assert killer.killed is not None, "no job was killed mid-job"
    assert any("submitting it again" in m for m in messages)
    assert metrics(out) == reference[1]
    jobs = stage(out, "task")
    assert jobs[killer.killed]["attempts"] == 2
    assert all(j["devices"] == "" for j in [*jobs.values(), *stage(out, "evaluation").values()])
    logs = list((out / "logs" / "slurm" / "task").glob("*/*_log.err"))
    assert len(logs) == 2  # a log per job: the killed one and its retry


def test_interrupted_under_processes_finished_under_local(reference, tmp_path):
    """The driver (and its worker processes) killed mid-evaluation; ``--status`` tells where it stopped; the run
    is finished under another executor and ends where an uninterrupted one ends."""
    out = tmp_path / "out"
    spec = _spec(reference, out, executor="processes", workers=2)
    config = tmp_path / "matrix.yaml"
    config.write_text(yaml.safe_dump(spec))
    code = "import sys; from xlt.cli import main; main(sys.argv[1:])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "matrix", str(config), "--report", "false"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the workers go down with it
    )
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "status" / "evaluation.json").is_file():
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    shown = status(out)
    assert "stopped before it finished" in shown and "executor processes" in shown
    assert "task" in shown and "evaluation" in shown
    assert shown.splitlines()[-1].startswith("cells stored:")
    run_matrix(load_config({**spec, "executor": "local", "workers": 1}), log=SILENT, report=False)
    assert metrics(out) == reference[1]
    assert all(j["state"] == "done" for j in stage(out, "evaluation").values())
    shown = status(out)
    assert "finished" in shown and "executor local" in shown


def test_status_from_the_command_line(reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(Path(reference[0]["output_dir"]), out)
    main(["matrix", "--status", str(out)])
    shown = capsys.readouterr().out
    assert "cells stored: 9 evaluated, 0 could not be" in shown
    assert "evaluation" in shown and "executor local" in shown
    table = results_csv(read_rows(out)).splitlines()
    assert table[0].endswith(",executor,workers") and all(line.endswith(",local,1") for line in table[1:])


def test_the_executor_is_not_part_of_the_recipe(reference):
    spec, _ = reference
    plain = load_config(spec).recipe_hash()
    for executor, options in [("ray", {"address": "auto", "gpus_per_job": 1}), ("slurm", {"partition": "gpu"})]:
        assert load_config({**spec, "executor": executor, "executor_options": options}).recipe_hash() == plain
    assert load_config({**spec, "workers": 4, "executor": "processes"}).recipe_hash() == plain
