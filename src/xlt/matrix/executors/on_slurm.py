"""``executor: slurm``: each stage's jobs as a Slurm job array through ``submitit`` (no ``sbatch`` script to
write); submitit's local backend runs the same jobs as processes on this machine when no Slurm is present.

The array's concurrency is capped (``max_jobs``), each job has its time, partition, CPUs, GPUs and memory, and
its logs land in ``{output_dir}/logs/slurm/{stage}/{job id}/``. A job preempted or out of time is requeued by
submitit and resumes from its own checkpoints; one whose process died (killed, a lost node) is submitted again,
up to ``retries`` times. submitit is an optional dependency (``pip install 'xlt[slurm]'``), imported only here.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from xlt.errors import XLTError
from xlt.matrix.executors.base import Executor, Outcome, Work, WorkerSpec, execute_in_worker, first_line
from xlt.matrix.executors.board import Board

if TYPE_CHECKING:
    from xlt.model import XLTModel


@dataclass(frozen=True)
class SlurmOptions:
    """Options of ``executor: slurm`` (``executor_options:`` in the config).

    Args:
        cluster: "auto" (Slurm where ``sbatch`` is found, else submitit's local backend), "slurm" or "local".
        partition: the Slurm partition (None: the cluster's default).
        time_min: each job's time limit in minutes; a job out of time is requeued and resumes.
        max_jobs: jobs of an array running at once (None: ``workers``, or as many as Slurm gives).
        cpus_per_job: CPUs per job (and the torch threads it uses).
        gpus_per_job: GPUs per job (None: 1 on Slurm, 0 on the local backend).
        mem_gb: memory per job (None: the partition's default).
        retries: how many times a job whose process died is submitted again.
        setup: shell lines each job runs first (``module load ...``, activating the environment).
        additional: other ``#SBATCH`` options, as name -> value (e.g. ``{account: nlp, qos: high}``).
        poll_s: seconds between looks at the jobs' states (None: 10 on Slurm, 0.5 on the local backend).
    """

    cluster: Literal["auto", "slurm", "local"] = "auto"
    partition: str | None = None
    time_min: int = 240
    max_jobs: int | None = None
    cpus_per_job: int = 1
    gpus_per_job: int | None = None
    mem_gb: float | None = None
    retries: int = 2
    setup: list[str] = field(default_factory=list)
    additional: dict[str, Any] = field(default_factory=dict)
    poll_s: float | None = None

    def __post_init__(self) -> None:
        if self.cluster not in ("auto", "slurm", "local"):
            raise XLTError(f"executor_options.cluster: {self.cluster!r} is not auto, slurm or local")
        if self.time_min < 1 or self.cpus_per_job < 1 or self.retries < 0:
            raise XLTError("executor_options: time_min and cpus_per_job must be >= 1, retries >= 0")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise XLTError(f"executor_options.max_jobs: {self.max_jobs}; give 1 or more")
        if self.gpus_per_job is not None and self.gpus_per_job < 0:
            raise XLTError(f"executor_options.gpus_per_job: {self.gpus_per_job} is negative; give 0 or more")
        if not isinstance(self.setup, list) or not all(isinstance(line, str) for line in self.setup):
            raise XLTError('executor_options.setup: give a list of shell lines (setup: ["module load cuda"])')
        if not isinstance(self.additional, dict):
            raise XLTError("executor_options.additional: give a mapping of #SBATCH option -> value ({account: nlp})")
        if self.mem_gb is not None and not self.mem_gb > 0:
            raise XLTError(f"executor_options.mem_gb: {self.mem_gb} is not a positive size in GB")
        if self.poll_s is not None and not self.poll_s > 0:
            raise XLTError(f"executor_options.poll_s: {self.poll_s}; give a positive number of seconds")


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise XLTError("executor: slurm needs submitit; install it with pip install 'xlt[slurm]'") from None
    return submitit


try:
    from submitit.helpers import Checkpointable
except ImportError:  # the executor refuses to run without submitit (check); the module still imports
    Checkpointable = object


class SubmittedJob(Checkpointable):  # type: ignore[misc,valid-type]
    """One matrix job as submitit runs it; on preemption or timeout submitit resubmits it as it was, and the job
    resumes from the checkpoints its run directory holds."""

    def __call__(self, work: Work, spec: WorkerSpec, gpus: int, board: Board | None, attempt: int) -> Outcome:
        return execute_in_worker(work, spec, gpus, board, attempt)


class SlurmExecutor(Executor):
    name = "slurm"
    options: SlurmOptions

    def check(self) -> None:
        _import_submitit()
        if self.options.cluster == "slurm" and shutil.which("sbatch") is None:
            raise XLTError(
                "executor_options.cluster: slurm, but sbatch is not on this machine's PATH; run on a "
                "Slurm login node, or use cluster: local"
            )

    def _cluster(self) -> str:
        if self.options.cluster != "auto":
            return self.options.cluster
        return "slurm" if shutil.which("sbatch") else "local"

    def _executor(self, stage: str, cluster: str, gpus: int, cap: int | None) -> Any:
        submitit = _import_submitit()
        o = self.options
        folder = (self.logs or Path("logs")) / stage / "%j"
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        params: dict[str, Any] = {
            "name": f"xlt-{stage}",
            "timeout_min": o.time_min,
            "cpus_per_task": o.cpus_per_job,
            "gpus_per_node": gpus,
            "tasks_per_node": 1,
            "nodes": 1,
        }
        if o.mem_gb is not None:
            params["mem_gb"] = o.mem_gb
        if cluster == "slurm":
            params["slurm_array_parallelism"] = cap or 256
            params["slurm_setup"] = list(o.setup)
            if o.partition is not None:
                params["slurm_partition"] = o.partition
            if o.additional:
                params["slurm_additional_parameters"] = dict(o.additional)
        executor.update_parameters(**params)
        return executor

    def run(self, jobs: Sequence[Work], model: XLTModel) -> Iterator[Outcome]:
        if not jobs:
            return
        o = self.options
        cluster = self._cluster()
        gpus = o.gpus_per_job if o.gpus_per_job is not None else (1 if cluster == "slurm" else 0)
        cap = o.max_jobs or self.workers
        if cluster == "local":
            cap = cap or os.cpu_count() or 1  # submitit's local backend starts every job it is given at once
        poll = o.poll_s if o.poll_s is not None else (10.0 if cluster == "slurm" else 0.5)
        spec = WorkerSpec(
            self.spec.model, self.spec.model_path, self.spec.threads or o.cpus_per_job, self.spec.languages
        )
        stage = jobs[0].stage
        executor = self._executor(stage, cluster, gpus, cap)
        call = SubmittedJob()
        self.log(
            f"slurm: {len(jobs)} {stage} job(s) on {'Slurm' if cluster == 'slurm' else 'local processes'}, "
            f"{cap or 'no cap'} at once; logs in {(self.logs or Path('logs')) / stage}"
        )

        def submit(batch: list[tuple[Work, int]]) -> dict[Any, tuple[Work, int]]:
            if cluster == "slurm":
                with executor.batch():  # one array per stage: Slurm schedules it, the cap is its parallelism
                    submitted = [(executor.submit(call, w, spec, gpus, self.board, a), (w, a)) for w, a in batch]
            else:
                submitted = [(executor.submit(call, w, spec, gpus, self.board, a), (w, a)) for w, a in batch]
            return {job: entry for job, entry in submitted}

        waiting: list[tuple[Work, int]] = [(job, 1) for job in jobs]
        self._pending: dict[Any, tuple[Work, int]] = {}
        pending = self._pending
        done = 0
        while waiting or pending:
            room = len(waiting) if cluster == "slurm" else max(0, cap - len(pending))  # type: ignore[operator]
            if room and waiting:
                batch, waiting = waiting[:room], waiting[room:]
                try:
                    pending.update(submit(batch))
                except Exception as exc:  # not submitted (a job that cannot be pickled, sbatch refused the array)
                    for work, attempt in batch:
                        done += 1
                        why = f"could not be submitted: {type(exc).__name__}: {first_line(exc)}"
                        yield Outcome(work.name, None, why, 0.0, attempts=attempt)
                    continue
            finished = [job for job in pending if job.done()]
            if not finished:
                time.sleep(poll)
                continue
            for job in finished:
                work, attempt = pending.pop(job)
                try:
                    outcome = job.result()
                except Exception as exc:  # its process died (killed, out of memory, a lost node), or failed
                    why = f"{type(exc).__name__}: {_reason(exc)}"
                    died = type(exc).__name__ != "FailedJobError"  # a Python error in the job: running it again
                    if died and attempt <= o.retries:  # gives the same error, so only a death is retried
                        self.log(f"{work.name}: attempt {attempt} ended without a result ({why}); submitting it again")
                        waiting.append((work, attempt + 1))
                        continue
                    outcome = Outcome(
                        work.name,
                        None,
                        f"{why} (after {attempt} attempts; its log: {job.paths.stderr})",
                        0.0,
                        attempts=attempt,
                    )
                done += 1
                self.log(f"[{done}/{len(jobs)}] {outcome.name}: {'done' if outcome.error is None else outcome.error}")
                yield outcome

    def close(self) -> None:
        """An interrupted run cancels the jobs it submitted (their run directories keep their checkpoints)."""
        for job in list(getattr(self, "_pending", {})):
            try:
                job.cancel(check=False)
            except Exception as exc:  # the scheduler may be gone: the note says what is left running
                self.log(f"slurm: could not cancel job {job.job_id} ({first_line(exc)}); cancel it with scancel")
        self._pending = {}

    def describe(self) -> str:
        cap = self.options.max_jobs or self.workers
        return f"slurm ({self._cluster()}, {cap or 'as many as Slurm gives'} at once)"


def _reason(exc: BaseException) -> str:
    """A job's failure in one line: for a Python error inside it, the traceback's last line (the error itself)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if type(exc).__name__ == "FailedJobError" and lines:
        return lines[-1]
    return " ".join(lines)[:400] or type(exc).__name__  # submitit's own message spans lines: its state is last
