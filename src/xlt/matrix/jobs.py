"""Training jobs of a matrix and where they run: in this process, or side by side in worker processes (one
per GPU, or CPU threads split between them). A job writes only its own run directory, so a killed job is
resumed by the next run and a finished one is reused."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlt.errors import XLTError
from xlt.formats.atomic import make_dir
from xlt.loading import load_model
from xlt.model import XLTModel
from xlt.paths import writing_under
from xlt.tasks.base import Task
from xlt.training.language import LanguageRun, train_language
from xlt.training.task import TaskRun, train_task


@dataclass
class Job:
    """One representation to train: ``run`` is a LanguageRun or TaskRun (with its ``task``); ``needs`` are rep
    directories that must be in the model first (the source language's representation of a task run)."""

    name: str
    run: LanguageRun | TaskRun
    needs: list[Path] = field(default_factory=list)
    task: Task | None = None


@dataclass
class Outcome:
    name: str
    rep_dir: Path | None
    error: str | None
    seconds: float


def run_job(model: XLTModel, job: Job, log: Callable[[str], None]) -> Outcome:
    """Train (or resume, or reuse) one job on ``model``; a bad-input error becomes the job's outcome."""
    start = time.perf_counter()
    try:
        for directory in job.needs:
            name = _rep_name(directory)
            if name not in model.reps:
                model.load_rep(directory)
        make_dir(Path(job.run.output_dir).parent)
        with writing_under(Path(job.run.output_dir)):  # a job writes its own run directory, nothing else
            if isinstance(job.run, LanguageRun):
                rep_dir = train_language(model, job.run, log=log)
            else:
                rep_dir = train_task(model, job.run, log=log, task=job.task)
    except XLTError as exc:
        return Outcome(job.name, None, str(exc), time.perf_counter() - start)
    except Exception as exc:
        # reported on its cells and the rest of the grid proceeds; the traceback goes to the log
        log(traceback.format_exc())
        return Outcome(job.name, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    return Outcome(job.name, rep_dir, None, time.perf_counter() - start)


def _rep_name(directory: Path) -> str:
    from xlt.formats.native import read_rep_config

    return str(read_rep_config(directory)["name"])


_WORKER: dict[str, Any] = {}


def _init_worker(model: str, path: Path | None, threads: int | None, devices: Any, languages: dict[str, Any]) -> None:
    from xlt.matrix.config import register_languages

    register_languages(languages)  # a spawned worker starts from the built-in registry only
    device = devices.get() if devices is not None else None
    if device is not None:
        import torch

        torch.cuda.set_device(device)  # Accelerate places a one-process run on the current device
    _WORKER["model"] = load_model(model, threads, device, path=path)


def _work(job: Job) -> Outcome:
    log = lambda message: print(f"[{job.name}] {message}", file=sys.stderr, flush=True)  # noqa: E731
    return run_job(_WORKER["model"], job, log)


def _outcome(future: Any, job: Job) -> Outcome:
    """A worker's outcome; a job that could not reach its worker (a task or rep that cannot be pickled, such as a
    class defined inside a function) or whose worker died is that job's error, not the whole run's."""
    try:
        return future.result()
    except Exception as exc:
        why = (
            f"{type(exc).__name__}: {exc} (a job in a worker process must be picklable: define task types and kinds "
            "at module level, or run with workers: 1)"
        )
        return Outcome(job.name, None, why, 0.0)


def run_jobs(
    jobs: Sequence[Job],
    *,
    model: XLTModel,
    model_name: str,
    model_path: Path | None = None,
    workers: int,
    threads: int | None,
    log: Callable[[str], None],
    languages: dict[str, Any] | None = None,
) -> list[Outcome]:
    """Run independent jobs: here on ``model`` when ``workers`` is 1, else in a pool of worker processes.

    The trained reps end up in ``model``'s bank either way (loaded from the jobs' directories)."""
    if not jobs:
        return []
    if workers <= 1 or len(jobs) == 1:
        outcomes = []
        for number, job in enumerate(jobs, 1):
            log(f"[{number}/{len(jobs)}] {job.name}")
            outcomes.append(run_job(model, job, log))
        return outcomes
    import torch

    count = min(workers, len(jobs))
    context = multiprocessing.get_context("spawn")  # CUDA and forked torch threads do not mix
    devices = None
    if torch.cuda.is_available():
        count = min(count, torch.cuda.device_count())  # one worker per GPU
        if count == 1:
            log(f"workers: {workers} asked, but one GPU holds one worker: running the {len(jobs)} jobs here")
            return run_jobs(jobs, model=model, model_name=model_name, workers=1, threads=threads, log=log)
        devices = context.Manager().Queue()
        for i in range(count):
            devices.put(f"cuda:{i}")
    per_worker = threads or max(1, (os.cpu_count() or 1) // count)
    log(f"running {len(jobs)} jobs on {count} workers ({'GPUs' if devices else f'{per_worker} CPU threads each'})")
    outcomes: list[Outcome] = []
    init = (model_name, model_path, per_worker, devices, languages or {})
    with ProcessPoolExecutor(count, mp_context=context, initializer=_init_worker, initargs=init) as pool:
        futures = {pool.submit(_work, job): job for job in jobs}
        for number, future in enumerate(as_completed(futures), 1):
            outcome = _outcome(future, futures[future])
            log(f"[{number}/{len(jobs)}] {outcome.name}: {'done' if outcome.error is None else outcome.error}")
            outcomes.append(outcome)
    for outcome in outcomes:
        if outcome.rep_dir is not None:
            name = _rep_name(outcome.rep_dir)
            if name in model.reps:
                model.remove(name)
            model.load_rep(outcome.rep_dir)
    return outcomes
