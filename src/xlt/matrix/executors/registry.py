"""The registry of executors: name -> the Executor class and options dataclass, as "module:Class" strings, so that
an executor's module (and its optional dependency) is imported only when it is chosen."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xlt.errors import XLTError

if TYPE_CHECKING:
    from xlt.matrix.executors.base import Executor, WorkerSpec
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
