"""A small matrix for executor tests, its uninterrupted result, and a killer of a job's worker mid-job."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "matrix"))

from matrix_helpers import world

from xlt.matrix.executors import Executor, Outcome, Work, execute_in_worker
from xlt.matrix.store import key_of, read_rows

SILENT = lambda _: None  # noqa: E731


def small_world(
    root: Path,
    arch: str = "bert",
    languages: tuple[str, ...] = ("en", "de", "sk"),
    configurations: tuple[str, ...] = ("TA", "SLP+TA", "LA+TA"),
) -> dict[str, Any]:
    """By default three languages and three configurations on BERT: an LM head, six language, three task and three
    evaluation jobs. Language runs are long enough (40 steps, a checkpoint every 2) for a kill to land mid-job."""
    spec = world(root, arch, languages=list(languages))
    spec["configurations"] = list(configurations)
    spec["language_training"]["train"] = {**spec["language_training"]["train"], "steps": 40, "eval_every": 20}
    spec["threads"] = 1
    return spec


def metrics(out: Path) -> dict[tuple, Any]:
    rows = read_rows(out)
    keys = [key_of(r) for r in rows]
    assert len(keys) == len(set(keys)), "a cell was stored twice"
    return {key_of(r): (r["status"], r.get("metrics"), (r.get("reps") or {}).get("task")) for r in rows}


def stage(out: Path, name: str) -> dict[str, Any]:
    return json.loads((out / "status" / f"{name}.json").read_text())["jobs"]


class Killer(threading.Thread):
    """SIGKILLs the worker of the first ``stage`` job found running with a checkpoint written: mid-job."""

    def __init__(self, out: Path, stage: str = "task", timeout: float = 600) -> None:
        super().__init__(daemon=True)
        self.out, self.stage, self.timeout = out, stage, timeout
        self.killed: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        running = self.out / "status" / "running"
        while not self.stop.is_set() and time.monotonic() < deadline:
            for marker in running.glob("*.json") if running.is_dir() else []:
                try:
                    data = json.loads(marker.read_text())
                except (OSError, ValueError):
                    continue
                run_dir = self.out / "reps" / self.stage / data["name"].replace("/", "-")
                if data.get("stage") != self.stage or not (run_dir / "checkpoint" / "trainer.json").is_file():
                    continue
                if (run_dir / "result.json").is_file():
                    continue
                pid = int(str(data["worker"]).rsplit(":", 1)[1])
                os.kill(pid, signal.SIGKILL)
                self.killed = data["name"]
                return
            time.sleep(0.005)


@dataclass(frozen=True)
class RemoteHereOptions:
    """``remote-here`` takes no options."""


class RemoteHere(Executor):
    """An executor registered by the tests: each job pickled and run the way a remote worker runs it (a model of
    its own that holds no representation but those the job loads), in this process."""

    name = "remote-here"

    def run(self, jobs: Sequence[Work], model: Any) -> Iterator[Outcome]:
        for job in jobs:
            yield execute_in_worker(pickle.loads(pickle.dumps(job)), self.spec, 0, self.board)
