"""The training jobs of a matrix: a representation (or the LM head) to train, resume or reuse. A job writes only
its own run directory, so a killed job is resumed by the next run and a finished one is reused; where it runs
is its executor's business (``xlt.matrix.executors``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xlt.errors import XLTError
from xlt.formats.atomic import make_dir
from xlt.matrix.executors.base import Outcome
from xlt.model import XLTModel
from xlt.paths import writing_under
from xlt.tasks.base import Task
from xlt.training.language import LanguageRun, LMHeadRun, train_language, train_lm_head
from xlt.training.task import TaskRun, train_task


@dataclass
class Job:
    """One representation to train: ``run`` is a LanguageRun, TaskRun (with its ``task``) or LMHeadRun; ``needs``
    are rep directories that must be in the model first (the source language's representation of a task run)."""

    name: str
    run: LanguageRun | TaskRun | LMHeadRun
    needs: list[Path] = field(default_factory=list)
    task: Task | None = None
    stage: str = "language"

    def execute(self, model: XLTModel, log: Callable[[str], None]) -> Outcome:
        return run_job(model, self, log)


def run_job(model: XLTModel, job: Job, log: Callable[[str], None]) -> Outcome:
    """Train (or resume, or reuse) one job on ``model``; a bad-input error becomes the job's outcome."""
    start = time.perf_counter()
    try:
        for directory in job.needs:
            if rep_name(directory) not in model.reps:
                model.load_rep(directory)
        make_dir(Path(job.run.output_dir).parent)
        with writing_under(Path(job.run.output_dir)):  # a job writes its own run directory, nothing else
            if isinstance(job.run, LMHeadRun):
                rep_dir = train_lm_head(model, job.run, log=log)
            elif isinstance(job.run, LanguageRun):
                rep_dir = train_language(model, job.run, log=log)
            else:
                rep_dir = train_task(model, job.run, log=log, task=job.task)
    except XLTError as exc:
        return Outcome(job.name, None, str(exc), time.perf_counter() - start)
    return Outcome(job.name, rep_dir, None, time.perf_counter() - start)


def rep_name(directory: Path) -> str:
    from xlt.formats.native import read_rep_config

    return str(read_rep_config(directory)["name"])
