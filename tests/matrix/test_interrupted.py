"""A matrix killed at any point and run again loses nothing, repeats nothing and ends where an uninterrupted run
ends (executors side by side: tests/executors)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from matrix_helpers import world

from xlt.matrix import load_config, run_matrix
from xlt.matrix.store import key_of, read_rows

pytestmark = pytest.mark.slow
SILENT = lambda _: None  # noqa: E731


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, and the config file the interrupted runs use."""
    root = tmp_path_factory.mktemp("reference")
    spec = world(root)
    run_matrix(load_config(spec), log=SILENT)
    path = root / "matrix.yaml"
    path.write_text(yaml.safe_dump(spec))
    return root, spec, path


def _metrics(out: Path) -> dict:
    rows = read_rows(out)
    keys = [key_of(r) for r in rows]
    assert len(keys) == len(set(keys)), "a cell was stored twice"
    return {key_of(r): (r["status"], r.get("metrics")) for r in rows}


def _start(config: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = "import torch, sys; torch.set_num_threads(1); from xlt.cli import main; main(sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, "matrix", str(config), "--output_dir", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; False when it finished first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    return False


def _count(directory: Path) -> int:
    return len(list(directory.iterdir())) if directory.is_dir() else 0


def test_kill_and_rerun_loses_and_repeats_nothing(reference, tmp_path):
    root, _, config = reference
    out = tmp_path / "out"
    stages = [
        lambda: _count(out / "reps" / "language") >= 3,  # mid language representations
        lambda: _count(out / "reps" / "task") >= 3,  # mid task representations
        lambda: len(read_rows(out)) >= 4,  # mid evaluation: some groups stored, others not
    ]
    kills = 0
    for ready in stages:
        killed = _kill_when(_start(config, out), ready)
        kills += killed
        if out.exists():
            _metrics(out)  # readable and free of duplicates after every kill
    assert kills >= 2
    assert _kill_when(_start(config, out), lambda: False) is False  # the last run completes
    got, want = _metrics(out), _metrics(root / "out")
    assert sorted(got) == sorted(want) and len(got) == 28
    assert got == want  # exact resume: the same weights, so the same predictions
