"""A remote job's failure reaches its cells as one readable line: the error a Ray task raised (not Ray's
coloured wrapper with its traceback), the last line of a Slurm job's Python traceback."""

from __future__ import annotations

import pytest

from xlt.errors import XLTError


def test_a_ray_task_error_is_its_cause_in_one_line():
    exceptions = pytest.importorskip("ray.exceptions")
    from xlt.matrix.executors.on_ray import _reason

    wrapped = exceptions.RayTaskError(
        "_task",
        "Traceback (most recent call last):\n  ...\nXLTError: no such model",
        XLTError("no such model"),
        pid=7,
        ip="10.0.0.1",
    )
    assert "\x1b[" in str(wrapped) or "_task" in str(wrapped)  # what Ray would show
    assert _reason(wrapped) == "XLTError: no such model"
    assert _reason(RuntimeError("\x1b[31mworker died\x1b[0m\nmore")) == "RuntimeError: worker died"


def test_a_slurm_job_error_is_its_tracebacks_last_line():
    utils = pytest.importorskip("submitit.core.utils")
    from xlt.matrix.executors.on_slurm import _reason

    failed = utils.FailedJobError(
        "Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent call "
        'last):\n  File "x.py", line 1, in <module>\nValueError: the model directory is gone\n'
    )
    assert _reason(failed) == "ValueError: the model directory is gone"
    died = utils.UncompletedJobError("Job 123 (task: 0) with path /x\nhas not produced any output (state: FAILED)")
    assert _reason(died) == "Job 123 (task: 0) with path /x has not produced any output (state: FAILED)"
