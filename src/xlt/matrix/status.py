"""``xlt matrix --status DIR``: per stage, how many jobs are done, running, failed and left (with the failures'
one-line reasons), and how many cells the store holds; read from the job board and the result store, so it
works while the run is going on, from another shell or another machine on the same filesystem."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from xlt.errors import XLTError
from xlt.matrix.executors.board import STAGES, Board
from xlt.matrix.store import META, read_rows


def _alive(run: dict[str, Any]) -> bool | None:
    """Whether the run's driver still runs (None: it runs on another machine, which this one cannot tell)."""
    if run.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(run["pid"]), 0)
    except (ProcessLookupError, ValueError, TypeError, KeyError):
        return False
    except PermissionError:
        return True
    return True


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def status(out: Path) -> str:
    out = Path(out)
    if not (out / META).is_file():
        raise XLTError(f"{out} holds no matrix ({META} is missing); give the output directory of an xlt matrix run")
    board = Board.of(out)
    run, stages, running = board.run(), board.stages(), board.running()
    lines = [f"matrix {out}"]
    if run is not None:
        alive = _alive(run)
        if run.get("finished"):
            state = f"finished {_ago(time.time() - run['finished'])} ago"
        elif alive is False:
            state = "stopped before it finished (run the same command again to resume)"
        else:
            state = f"running for {_ago(time.time() - float(run.get('started') or time.time()))}"
            state += "" if alive else f" on {run.get('host')} (pid {run.get('pid')})"
        workers = run.get("workers")
        lines.append(f"last run: executor {run.get('executor')}, {workers or 'cluster-sized'} at once; {state}")
    lines.append(f"{'stage':<12}{'done':>6}{'running':>9}{'failed':>8}{'left':>6}")
    failures = []
    for stage in STAGES:
        jobs = stages.get(stage)
        if jobs is None:
            continue
        counts = {"done": 0, "running": 0, "failed": 0, "left": 0}
        for name, job in jobs.items():
            state = job.get("state", "left")
            if state == "left" and name in running:
                state = "running"
            counts[state if state in counts else "left"] += 1
            if state == "failed":
                failures.append(f"  {stage} {name}: {job.get('error')}")
        lines.append(f"{stage:<12}{counts['done']:>6}{counts['running']:>9}{counts['failed']:>8}{counts['left']:>6}")
    for name, marker in running.items():
        if stages.get(str(marker.get("stage")), {}).get(name, {}).get("state", "left") == "left":
            since = _ago(time.time() - float(marker.get("since") or time.time()))
            lines.append(f"  running: {name} on {marker.get('worker')} for {since} (attempt {marker.get('attempt')})")
    if failures:
        lines.append("failed:")
        lines.extend(failures)
    rows = read_rows(out)
    ok = sum(r.get("status") == "ok" for r in rows)
    lines.append(f"cells stored: {ok} evaluated, {len(rows) - ok} could not be")
    return "\n".join(lines)
