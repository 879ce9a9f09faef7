"""Where a matrix's jobs run: executors registered by name, like kinds, and imported only when chosen.

``local`` runs every job in the matrix's process; ``processes`` side by side in worker processes on this
machine; ``ray`` as Ray tasks on a cluster; ``slurm`` as Slurm job arrays through submitit. A new executor is one
module with an ``Executor`` subclass and its options dataclass, plus one ``register_executor`` call. The
executor never changes a result: the recipe ignores it, and a run started on one is resumed on any other.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

from xlt.errors import XLTError
from xlt.matrix.executors.base import Executor, Outcome, Work, WorkerSpec, execute, execute_in_worker
from xlt.matrix.executors.board import Board


@dataclass(frozen=True)
class ExecutorEntry:
    """A registered executor: ``target`` is "module:Class" of its Executor, ``options`` "module:Class" of its
    options dataclass, ``extra`` the pip extra that brings its dependency (None: none needed)."""

    name: str
    target: str
    options: str
    extra: str | None = None


_EXECUTORS: dict[str, ExecutorEntry] = {}


def register_executor(name: str, target: str, options: str, extra: str | None = None) -> None:
    _EXECUTORS[name] = ExecutorEntry(name, target, options, extra)


def executor_names() -> list[str]:
    return list(_EXECUTORS)


def _load(target: str) -> Any:
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


def executor_entry(name: str) -> ExecutorEntry:
    if name not in _EXECUTORS:
        raise XLTError(f"executor: {name!r} is not one of {', '.join(_EXECUTORS)}")
    return _EXECUTORS[name]


def executor_options(name: str, options: dict[str, Any] | None) -> Any:
    """``options`` checked against the executor's options dataclass: an unknown key or a bad value is named."""
    cls = _load(executor_entry(name).options)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in options or {} if key not in known]
    if unknown:
        allowed = ", ".join(known) or "none"
        raise XLTError(f"executor_options.{unknown[0]}: unknown option of executor {name} (its options: {allowed})")
    try:
        return cls(**(options or {}))
    except TypeError as exc:
        raise XLTError(f"executor_options: {exc}") from None


def make_executor(
    name: str, options: dict[str, Any] | None, workers: int | None, spec: WorkerSpec, board: Board | None, log: Any
) -> Executor:
    cls = _load(executor_entry(name).target)
    return cls(executor_options(name, options), workers, spec, board, log)


register_executor("local", "xlt.matrix.executors.local:LocalExecutor", "xlt.matrix.executors.local:LocalOptions")
register_executor(
    "processes", "xlt.matrix.executors.processes:ProcessesExecutor", "xlt.matrix.executors.processes:ProcessesOptions"
)
register_executor("ray", "xlt.matrix.executors.on_ray:RayExecutor", "xlt.matrix.executors.on_ray:RayOptions", "ray")
register_executor(
    "slurm", "xlt.matrix.executors.on_slurm:SlurmExecutor", "xlt.matrix.executors.on_slurm:SlurmOptions", "slurm"
)

__all__ = [
    "Board",
    "Executor",
    "ExecutorEntry",
    "Outcome",
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
