"""The job board and ``--status`` under failures: a failed evaluation job's cells are errors, an interrupted run
says so, a board file of another shape never breaks ``--status``, and ``--executor`` resumes a run whose config
names another executor's options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from executor_helpers import SILENT, metrics, small_world

from xlt.cli import main
from xlt.matrix import load_config, run_matrix
from xlt.matrix.evaluation import EvaluationJob
from xlt.matrix.runner import Matrix
from xlt.matrix.status import status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    spec = small_world(root, "gpt2", ("en", "de"), ("TA",))
    run_matrix(load_config(spec), log=SILENT, report=False)
    return spec


def _copy(spec, tmp_path: Path) -> dict:
    out = Path(shutil.copytree(spec["output_dir"], tmp_path / "out"))
    return {**spec, "output_dir": str(out)}


def test_a_failed_evaluation_job_makes_its_cells_errors(finished, tmp_path, monkeypatch):
    spec = _copy(finished, tmp_path)
    (Path(spec["output_dir"]) / "results.jsonl").write_text("")  # trained: only the evaluation runs again

    def broken(self, model, log):
        raise RuntimeError("the evaluation's worker lost its GPU")

    monkeypatch.setattr(EvaluationJob, "execute", broken)
    rows = run_matrix(load_config(spec), log=SILENT, report=False)
    assert len(rows) == 2 and all(r["status"] == "error" for r in rows)
    assert all("RuntimeError: the evaluation's worker lost its GPU" in r["error"] for r in rows)
    shown = status(tmp_path / "out")
    assert "cells stored: 0 evaluated, 2 could not be" in shown and "lost its GPU" in shown


def test_an_interrupted_run_is_shown_stopped(finished, tmp_path, monkeypatch):
    spec = _copy(finished, tmp_path)
    (Path(spec["output_dir"]) / "results.jsonl").write_text("")  # every cell to evaluate again

    def interrupted(self, store, groups):
        raise KeyboardInterrupt

    monkeypatch.setattr(Matrix, "_evaluate_groups", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_matrix(load_config(spec), log=SILENT, report=False)
    shown = status(Path(spec["output_dir"]))
    assert "stopped" in shown and "KeyboardInterrupt" in shown and "run the same command again" in shown


@pytest.mark.parametrize(
    "garbage",
    [
        {"run.json": '{"pid": 99999999999999999999, "host": "HOST", "started": "yesterday", "finished": "soon"}'},
        {"task.json": '{"jobs": ["not", "a", "mapping"]}', "evaluation.json": '{"jobs": {"x": 5, "y": {"state": []}}}'},
        {"running/a.json": '{"name": "x", "stage": 7, "since": "now"}', "language.json": "[1, 2]"},
        {"run.json": "not json", "lm-head.json": '{"jobs": {"h": {"state": "done"}}}', "running/b.json": "\u0000"},
    ],
    ids=["numbers", "shapes", "marker", "bytes"],
)
def test_status_survives_a_board_of_another_shape(finished, tmp_path, garbage):
    import socket

    spec = _copy(finished, tmp_path)
    board = Path(spec["output_dir"]) / "status"
    for name, text in garbage.items():
        path = board / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("HOST", socket.gethostname()))
    shown = status(Path(spec["output_dir"]))
    assert shown.splitlines()[-1] == "cells stored: 2 evaluated, 0 could not be"


def test_executor_on_the_command_line_resumes_a_run_configured_for_another(finished, tmp_path, capsys):
    spec = _copy(finished, tmp_path)
    config = tmp_path / "m.yaml"
    config.write_text(yaml.safe_dump({**spec, "executor": "ray", "executor_options": {"address": "auto"}}))
    (Path(spec["output_dir"]) / "results.jsonl").write_text(
        "".join(line + "\n" for line in (Path(finished["output_dir"]) / "results.jsonl").read_text().splitlines()[:1])
    )
    main(["matrix", str(config), "--executor", "local", "--report", "false"])
    captured = capsys.readouterr()
    assert "executor_options are ray's; not used" in captured.err and "2 cells evaluated" in captured.out
    assert metrics(Path(spec["output_dir"])) == metrics(Path(finished["output_dir"]))
    run = json.loads((Path(spec["output_dir"]) / "status" / "run.json").read_text())
    assert run["executor"] == "local" and run["finished"]


def test_a_remote_executor_reuses_finished_runs_without_dispatching_them(finished, tmp_path, monkeypatch):
    from xlt.matrix.executors import base, register_executor

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # its jobs hide the GPUs: restored afterwards
    register_executor("remote-here", "executor_helpers:RemoteHere", "executor_helpers:RemoteHereOptions")
    spec = _copy(finished, tmp_path)
    (Path(spec["output_dir"]) / "results.jsonl").write_text("")  # trained: the evaluation runs again
    messages: list[str] = []
    try:
        run_matrix(load_config({**spec, "executor": "remote-here"}), log=messages.append, report=False)
    finally:
        base._MODELS.clear()
    assert any(m == "task: 1 job(s) finished before: checked here, not dispatched" for m in messages)
    assert metrics(Path(spec["output_dir"])) == metrics(Path(finished["output_dir"]))
    task = json.loads((Path(spec["output_dir"]) / "status" / "task.json").read_text())["jobs"]
    assert all(job["state"] == "done" for job in task.values())
