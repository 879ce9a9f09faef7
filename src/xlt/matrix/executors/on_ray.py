"""``executor: ray``: jobs as Ray tasks, on an existing Ray cluster (``address:``) or a local one started here.

Each task declares what it needs (CPUs, GPUs, memory), so Ray places it and shows a GPU job only its own
devices; a CPU job sees none. A task whose worker dies (a lost node, an OOM kill) is retried by Ray and
resumes from its job's own checkpoints, which the atomic protocol keeps trustworthy. Ray is an optional
dependency (``pip install 'xlt[ray]'``), imported only when this executor runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xlt.errors import XLTError
from xlt.matrix.executors.base import Executor, Outcome, Work, WorkerSpec, execute_in_worker, first_line
from xlt.matrix.executors.board import Board

if TYPE_CHECKING:
    from xlt.model import XLTModel


@dataclass(frozen=True)
class RayOptions:
    """Options of ``executor: ray`` (``executor_options:`` in the config).

    Args:
        address: the cluster to connect to ("auto": the one ``ray start`` runs on this machine, or
            "ray://host:10001"); None starts a local cluster for the run (or joins the one ``RAY_ADDRESS`` names).
        num_cpus: CPUs of a local cluster started here (None: this machine's).
        num_gpus: GPUs of a local cluster started here (None: this machine's).
        cpus_per_job: CPUs each job asks for (and the torch threads it uses).
        gpus_per_job: GPUs each job asks for (None: 1 on a cluster with GPUs, else 0).
        memory_gb: memory each job asks for (None: no reservation).
        max_retries: how many times a job whose worker died is run again.
        shutdown: shut down, at the end of the run, a local cluster started for it.
    """

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    cpus_per_job: int = 1
    gpus_per_job: int | None = None
    memory_gb: float | None = None
    max_retries: int = 3
    shutdown: bool = True

    def __post_init__(self) -> None:
        for name in ("num_cpus", "num_gpus", "gpus_per_job"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise XLTError(f"executor_options.{name}: {value} is negative; give 0 or more")
        if self.cpus_per_job < 1 or self.max_retries < 0:
            raise XLTError("executor_options: cpus_per_job must be >= 1 and max_retries >= 0")
        if self.memory_gb is not None and self.memory_gb <= 0:
            raise XLTError(f"executor_options.memory_gb: {self.memory_gb} is not a positive size in GB")


def _task(work: Work, spec: WorkerSpec, gpus: int, board: Board | None) -> Outcome:
    return execute_in_worker(work, spec, gpus, board)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise XLTError("executor: ray needs Ray; install it with pip install 'xlt[ray]'") from None
    return ray


class RayExecutor(Executor):
    name = "ray"
    options: RayOptions

    _started = False

    def check(self) -> None:
        _import_ray()

    def _connect(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            o = self.options
            local = o.address is None and not os.environ.get("RAY_ADDRESS")
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if local:  # a cluster of its own, never one that `ray start` left running on this machine
                kwargs.update(num_cpus=o.num_cpus, num_gpus=o.num_gpus)
            try:
                ray.init(address="local" if local else o.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = o.address or os.environ.get("RAY_ADDRESS")
                raise XLTError(
                    f"executor: ray could not reach the cluster at {where}: {exc}; start it (ray start --head) or fix "
                    "executor_options.address"
                ) from None
            self._started = local
            self.log(
                f"ray: {'started a local cluster' if local else 'connected to ' + str(o.address)}: "
                f"{_short(ray.cluster_resources())}"
            )
        return ray

    def run(self, jobs: Sequence[Work], model: XLTModel) -> Iterator[Outcome]:
        if not jobs:
            return
        ray = self._connect()
        o = self.options
        gpus = o.gpus_per_job
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        spec = WorkerSpec(
            self.spec.model, self.spec.model_path, self.spec.threads or o.cpus_per_job, self.spec.languages
        )
        options: dict[str, Any] = {"num_cpus": o.cpus_per_job, "num_gpus": gpus, "max_retries": o.max_retries}
        if gpus > 0:
            # Ray may give a reused worker another GPU than its last task's, but CUDA, once started in a process,
            # keeps the devices it saw: a GPU job gets a fresh worker (and loads the model there).
            options["max_calls"] = 1
        if o.memory_gb is not None:
            options["memory"] = int(o.memory_gb * 1024**3)
        # A zero-GPU task's view of the GPUs is left as Ray found it: the task hides them itself before CUDA
        # starts in its worker (every job of a run asks for the same GPUs, so no worker of it ever started CUDA).
        remote = ray.remote(_task).options(**options)
        waiting = list(jobs)
        self._pending: dict[Any, Work] = {}
        pending = self._pending
        done = 0
        while waiting or pending:
            while waiting and (self.workers is None or len(pending) < self.workers):
                job = waiting.pop(0)
                try:
                    pending[remote.remote(job, spec, gpus, self.board)] = job
                except Exception as exc:  # it cannot be sent (a class that cannot be pickled): its own error
                    done += 1
                    yield Outcome(job.name, None, f"could not be sent to the cluster: {_reason(exc)}", 0.0)
            if not pending:
                continue
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except Exception as exc:  # its worker died more often than max_retries allows
                outcome = Outcome(job.name, None, _reason(exc), 0.0)
            done += 1
            self.log(f"[{done}/{len(jobs)}] {outcome.name}: {'done' if outcome.error is None else outcome.error}")
            yield outcome

    def close(self) -> None:
        import sys

        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return
        for ref in getattr(self, "_pending", {}):  # an interrupted run: its tasks stop with it
            ray.cancel(ref, force=True)
        self._pending = {}
        if self._started and self.options.shutdown:
            ray.shutdown()
            self._started = False

    def describe(self) -> str:
        return f"ray ({self.workers or 'as many as the cluster fits'} at once)"


def _reason(exc: BaseException) -> str:
    """A task's failure in one line: the error it raised (not Ray's coloured wrapper), or how its worker died."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = re.sub(r"\x1b\[[0-9;]*m", "", first_line(exc))
    return f"{type(exc).__name__}: {text}"


def _short(resources: dict[str, float]) -> str:
    keys = ("CPU", "GPU", "memory")
    return ", ".join(
        f"{k} {resources[k]:.0f}" if k != "memory" else f"memory {resources[k] / 1024**3:.1f} GB"
        for k in keys
        if k in resources
    )
