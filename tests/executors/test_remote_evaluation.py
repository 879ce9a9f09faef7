"""Every kind of configuration trained and evaluated the way a remote worker runs its jobs (each job pickled, on
a model of its own that holds only what the job loads), through an executor the test registers: the same cells
as ``local``, composed, ensembled, aligned and cycled ones included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from executor_helpers import SILENT

from xlt.matrix import load_config, run_matrix
from xlt.matrix.executors import base, executor_names, register_executor
from xlt.matrix.store import key_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "matrix"))
from test_aligned import aligned_world

pytestmark = pytest.mark.slow

CONFIGURATIONS = ["LA+TA", "LA+TA-avg", "LA+TA-ens", "LA+TA-align", "SLP+TA-cyc", "zero-shot"]


def _cells(rows):
    return {key_of(r): (r["status"], r.get("error"), r.get("metrics"), r.get("reps")) for r in rows}


def test_every_configuration_kind_evaluates_remotely_as_locally(tmp_path, monkeypatch):
    register_executor("remote-here", "executor_helpers:RemoteHere", "executor_helpers:RemoteHereOptions")
    assert "remote-here" in executor_names()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a worker's jobs without GPUs hide them: restored afterwards
    spec = {**aligned_world(tmp_path, CONFIGURATIONS), "threads": 1}
    local = run_matrix(load_config(spec), log=SILENT, report=False)
    remote_spec = {**spec, "output_dir": str(tmp_path / "remote"), "executor": "remote-here"}
    try:
        remote = run_matrix(load_config(remote_spec), log=SILENT, report=False)
    finally:
        base._MODELS.clear()
    assert len(local) == 18 and all(r["status"] == "ok" for r in local)
    assert _cells(remote) == _cells(local)  # weights' hashes, composed-from weights and ensemble members included
    assert all(r["run_by"]["executor"] == "remote-here" for r in remote)
