"""``executor: processes``: jobs side by side in worker processes on this machine, one per GPU, or CPU threads
split between them. Each worker loads the model once and runs job after job on it."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xlt.matrix.executors.base import Executor, Outcome, Work, WorkerSpec, execute_in_worker
from xlt.matrix.executors.board import Board

if TYPE_CHECKING:
    from xlt.model import XLTModel


@dataclass(frozen=True)
class ProcessesOptions:
    """``processes`` takes no options of its own: ``workers`` and ``threads`` size it."""


_DEVICE: dict[str, Any] = {}


def _init_worker(devices: Any) -> None:
    device = devices.get() if devices is not None else None
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device  # before CUDA starts here: this worker sees its GPU only
    _DEVICE["gpus"] = 1 if device is not None else 0


def _work(job: Work, spec: WorkerSpec, board: Board | None) -> Outcome:
    return execute_in_worker(job, spec, _DEVICE["gpus"], board)


def _outcome(future: Future, job: Work) -> Outcome:
    """A worker's outcome; a job that could not reach its worker (a task or rep that cannot be pickled, such as a
    class defined inside a function) or whose worker died is that job's error, not the whole run's."""
    try:
        return future.result()
    except BrokenProcessPool as exc:
        why = f"its worker process died ({exc}); run again to resume it (out of memory? fewer workers)"
        return Outcome(job.name, None, why, 0.0)
    except Exception as exc:
        why = (
            f"{type(exc).__name__}: {exc} (a job in a worker process must be picklable: define task types and kinds "
            "at module level, or run with executor: local)"
        )
        return Outcome(job.name, None, why, 0.0)


class ProcessesExecutor(Executor):
    name = "processes"

    _pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        """The worker processes, started at the first stage and kept for the next (each loads the model once)."""
        if self._pool is not None:
            return self._pool
        import torch

        count = self.workers or os.cpu_count() or 1
        context = multiprocessing.get_context("spawn")  # CUDA and forked torch threads do not mix
        devices = None
        if torch.cuda.is_available():
            count = min(count, torch.cuda.device_count())  # one worker per GPU
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
            devices = context.Manager().Queue()
            for device in ids[:count]:
                devices.put(device)
        threads = self.spec.threads or max(1, (os.cpu_count() or 1) // count)
        self._spec = WorkerSpec(self.spec.model, self.spec.model_path, threads, self.spec.languages)
        each = "a GPU each" if devices else f"{threads} CPU thread(s) each"
        self.log(f"processes: starting {count} worker process(es), {each}")
        self._pool = ProcessPoolExecutor(count, mp_context=context, initializer=_init_worker, initargs=(devices,))
        return self._pool

    def run(self, jobs: Sequence[Work], model: XLTModel) -> Iterator[Outcome]:
        if not jobs:
            return
        pool = self._start()
        futures = {pool.submit(_work, job, self._spec, self.board): job for job in jobs}
        for number, future in enumerate(as_completed(futures), 1):
            outcome = _outcome(future, futures[future])
            self.log(f"[{number}/{len(jobs)}] {outcome.name}: {'done' if outcome.error is None else outcome.error}")
            yield outcome
            if isinstance(future.exception(), BrokenProcessPool):
                self.close()  # a dead worker breaks the pool: the next stage starts a new one

    def describe(self) -> str:
        return f"processes ({self.workers or 'one per GPU, or per CPU core'} at once)"

    def close(self) -> None:
        """Stop the workers: after an interruption, a job still training is not waited for (its run directory
        keeps its last checkpoint, from which the next run resumes)."""
        if self._pool is not None:
            processes = list(getattr(self._pool, "_processes", {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            self._pool = None
