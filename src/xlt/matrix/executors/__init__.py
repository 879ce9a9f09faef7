"""Where a matrix's jobs run: executors registered by name, like kinds, and imported only when chosen.

``local`` runs every job in the matrix's process; ``processes`` side by side in worker processes on this
machine; ``ray`` as Ray tasks on a cluster; ``slurm`` as Slurm job arrays through submitit. A new executor is one
module with an ``Executor`` subclass and its options dataclass, plus one ``register_executor`` call. The
executor never changes a result: the recipe ignores it, and a run started on one is resumed on any other.
"""

from xlt.matrix.executors.base import Executor, Outcome, Probe, Work, WorkerSpec, execute, execute_in_worker
from xlt.matrix.executors.board import Board
from xlt.matrix.executors.registry import (
    ExecutorEntry,
    executor_entry,
    executor_names,
    executor_options,
    make_executor,
    register_executor,
)

__all__ = [
    "Board",
    "Executor",
    "ExecutorEntry",
    "Outcome",
    "Probe",
    "Work",
    "WorkerSpec",
    "execute",
    "execute_in_worker",
    "executor_entry",
    "executor_names",
    "executor_options",
    "make_executor",
    "register_executor",
]
