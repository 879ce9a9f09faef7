"""What every executor shares: the jobs it is handed, their outcomes, and how a job runs in a worker.

A job is anything with a ``name``, a ``stage`` and ``execute(model, log) -> Outcome``: a representation to train
(``xlt.matrix.jobs.Job``) or a group of cells to evaluate (``xlt.matrix.evaluation.EvaluationJob``). It writes
only its own directories, by the same atomic protocol wherever it runs, and the matrix keeps the result store
itself: an executor only decides where and when jobs run, never what they compute.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from xlt.matrix.executors.board import Board

if TYPE_CHECKING:
    from xlt.model import XLTModel

Log = Callable[[str], None]


@dataclass
class Outcome:
    """What became of one job: the directory it built (training), the rows it computed (evaluation), or why
    neither; where it ran and how many attempts it took."""

    name: str
    rep_dir: Path | None
    error: str | None
    seconds: float
    rows: list[dict[str, Any]] | None = None
    worker: str = ""
    attempts: int = 1
    devices: str | None = None  # the GPUs the job saw (CUDA_VISIBLE_DEVICES; "" for none, None when unset)


class Work(Protocol):
    name: str
    stage: str

    def execute(self, model: XLTModel, log: Log) -> Outcome: ...


@dataclass
class Probe:
    """A job that computes nothing: its outcome says where it ran and which GPUs it saw. Probes through an
    executor measure its overhead per job (``benchmarks/executors.py``) and check a cluster's setup."""

    name: str
    stage: str = "probe"

    def execute(self, model: XLTModel, log: Log) -> Outcome:
        return Outcome(self.name, None, None, 0.0)


@dataclass(frozen=True)
class WorkerSpec:
    """How a worker loads the model the matrix runs on, and the languages the config added to the registry."""

    model: str
    model_path: Path | None = None
    threads: int | None = None
    languages: dict[str, Any] = field(default_factory=dict)


class Executor(ABC):
    """Runs a stage's independent jobs and yields their outcomes as they finish.

    ``remote``: jobs run on a model of their own (another process or machine), so the representations they
    build reach the matrix's model from their directories. ``workers``: jobs at once (None: as many as the
    cluster's resources allow)."""

    name: ClassVar[str]
    remote: ClassVar[bool] = True

    def __init__(self, options: Any, workers: int | None, spec: WorkerSpec, board: Board | None, log: Log) -> None:
        self.options, self.workers, self.spec, self.board, self.log = options, workers, spec, board, log
        self.logs: Path | None = None  # where jobs' own logs go, if the executor keeps any (set by the matrix)

    def check(self) -> None:
        """Refuse, before anything is written, what cannot run (a missing optional dependency, a bad option)."""
        return None

    @abstractmethod
    def run(self, jobs: Sequence[Work], model: XLTModel) -> Iterator[Outcome]:
        """Run ``jobs`` and yield each outcome as it arrives (in any order)."""

    def close(self) -> None:
        """Release what the executor holds (a cluster it started, worker processes)."""
        return None

    def describe(self) -> str:
        return f"{self.name} ({self.workers or 'as many as the cluster fits'} at once)"


# ---- the worker side ----------------------------------------------------------------------------------------

_MODELS: dict[tuple[Any, ...], Any] = {}


def worker_model(spec: WorkerSpec, device: str | None) -> XLTModel:
    """The model of this worker process, loaded once and kept for its next jobs."""
    from xlt.matrix.config import register_languages

    register_languages(spec.languages)  # every job: a reused worker may have served another matrix before
    key = (spec.model, str(spec.model_path), spec.threads, device)
    if key not in _MODELS:
        from xlt.loading import load_model

        _MODELS.clear()  # one model per worker
        _MODELS[key] = load_model(spec.model, spec.threads, device, path=spec.model_path)
    return _MODELS[key]


def hide_gpus() -> None:
    """A job that asked for no GPU must not see one: CUDA reads this when first initialised, which in a worker
    happens only after this call (no executor initialises CUDA before its workers start)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


def first_line(exc: BaseException) -> str:
    """An exception as one line: a remote error carries the worker's whole traceback."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def here() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def execute(work: Work, model: XLTModel, log: Log, board: Board | None, attempt: int = 1) -> Outcome:
    """Run one job on ``model``, marked as running on the board while it does; any failure is its outcome."""
    start = time.perf_counter()
    if board is not None:
        attempt = board.started(work, here(), attempt)
    try:
        outcome = work.execute(model, log)
    except Exception as exc:  # a job's own failure is reported on its cells; the others proceed
        import traceback

        log(traceback.format_exc())
        outcome = Outcome(work.name, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    outcome.worker, outcome.attempts = here(), attempt
    outcome.devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    return outcome


def execute_in_worker(work: Work, spec: WorkerSpec, gpus: int, board: Board | None, attempt: int = 1) -> Outcome:
    """Run one job in a worker process: the worker's model, left as it found it for the next job."""
    if gpus == 0:
        hide_gpus()
    device = None
    if gpus > 0:
        import torch

        device = "cuda" if torch.cuda.is_available() else None  # the cluster shows each job its own GPUs only
        if device is None:
            print(f"[{work.name}] asked for {gpus} GPU(s) but this worker sees none: running on CPU", file=sys.stderr)
    model = worker_model(spec, device)
    before = set(model.reps)
    log = lambda message: print(f"[{work.name}] {message}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        return execute(work, model, log, board, attempt)
    finally:
        for name in [n for n in model.reps if n not in before]:
            model.remove(name)
