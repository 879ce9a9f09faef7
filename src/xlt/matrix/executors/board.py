"""A matrix's job board in ``{output_dir}/status/``: which jobs each stage has, which are done or failed (and
why), and which are running where. The driver writes the stages; a job marks itself running from whichever
worker runs it (the output directory is on a filesystem every worker shares). ``xlt matrix --status DIR`` reads
it, also while the run is going on, from another shell or machine."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlt.formats.atomic import atomic_write_text, make_dir
from xlt.paths import writing_under

if TYPE_CHECKING:
    from xlt.matrix.executors.base import Outcome, Work

STAGES = ("lm-head", "language", "aligned", "task", "evaluation")


def _slug(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None  # absent, being replaced, or not the board's: read again next time
    return data if isinstance(data, dict) else None


def _jobs(data: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A stage file's jobs, those of the board's shape only."""
    jobs = (data or {}).get("jobs")
    if not isinstance(jobs, dict):
        return {}
    return {str(name): job for name, job in jobs.items() if isinstance(job, dict)}


class Board:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._stages: dict[str, dict[str, Any]] = {}  # the driver's view of each stage's jobs

    @classmethod
    def of(cls, out: Path) -> Board:
        return cls(Path(out) / "status")

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        with writing_under(self.directory, independent=True):
            make_dir(path.parent)
            atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))

    # the driver ------------------------------------------------------------------------------------------
    def open_run(self, executor: str, workers: int | None) -> None:
        self._write(
            self.directory / "run.json",
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "executor": executor,
                "workers": workers,
                "started": time.time(),
                "finished": None,
            },
        )

    def close_run(self, stopped: str | None = None) -> None:
        """The run ended: finished, or ``stopped`` for the reason given (an interruption, an error)."""
        run = _read(self.directory / "run.json") or {}
        key = "stopped" if stopped is not None else "finished"
        self._write(self.directory / "run.json", {**run, key: time.time(), "reason": stopped})

    def queue(self, stage: str, names: list[str]) -> None:
        """A stage's jobs, all left; a job's earlier record (a previous run's failure) is replaced."""
        state = self._stage(stage)
        with writing_under(self.directory, independent=True):
            for name in names:
                state[name] = {"state": "left"}
                (self.directory / "running" / f"{_slug(name)}.json").unlink(missing_ok=True)  # an earlier run's
        self._write(self.directory / f"{stage}.json", {"jobs": state})
        self._stages[stage] = state

    def finished(self, stage: str, outcome: Outcome) -> None:
        state = self._stage(stage)
        state[outcome.name] = {
            "state": "done" if outcome.error is None else "failed",
            "error": outcome.error,
            "worker": outcome.worker,
            "attempts": outcome.attempts,
            "devices": outcome.devices,
            "seconds": round(outcome.seconds, 3),
        }
        self._write(self.directory / f"{stage}.json", {"jobs": state})
        marker = self.directory / "running" / f"{_slug(outcome.name)}.json"
        with writing_under(self.directory, independent=True):
            marker.unlink(missing_ok=True)

    def _stage(self, stage: str) -> dict[str, Any]:
        if stage not in self._stages:
            self._stages[stage] = _jobs(_read(self.directory / f"{stage}.json"))
        return self._stages[stage]

    # a worker --------------------------------------------------------------------------------------------
    def started(self, work: Work, worker: str, attempt: int) -> int:
        """Mark ``work`` running on ``worker``; its attempt number (one more than a marker left by a worker that
        died on it, which a retry finds)."""
        marker = self.directory / "running" / f"{_slug(work.name)}.json"
        left = _read(marker)
        if left is not None and left.get("worker") != worker and isinstance(left.get("attempt"), int):
            attempt = max(attempt, left["attempt"] + 1)
        self._write(
            marker,
            {"name": work.name, "stage": work.stage, "worker": worker, "attempt": attempt, "since": time.time()},
        )
        return attempt

    # the reader ------------------------------------------------------------------------------------------
    def running(self) -> dict[str, dict[str, Any]]:
        """Job name -> its running marker (where, since when, which attempt)."""
        out = {}
        folder = self.directory / "running"
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            data = _read(path)
            if data is not None and isinstance(data.get("name"), str):
                out[data["name"]] = data
        return out

    def stages(self) -> dict[str, dict[str, Any]]:
        out = {}
        for stage in STAGES:
            data = _read(self.directory / f"{stage}.json")
            if data is not None:
                out[stage] = _jobs(data)
        return out

    def run(self) -> dict[str, Any] | None:
        return _read(self.directory / "run.json")
