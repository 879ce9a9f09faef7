"""``xlt matrix --status DIR``: per stage, how many jobs are done, running, failed and left (with the failures'
one-line reasons), and how many cells the store holds; read from the job board and the result store, so it
works while the run is going on, from another shell or another machine on the same filesystem. The board is
read defensively: a file of another shape is skipped, never a traceback."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from xlt.errors import XLTError
from xlt.matrix.executors.board import STAGES, Board
from xlt.matrix.store import META, read_rows

COUNTED = ("done", "running", "failed", "left")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _alive(run: dict[str, Any]) -> bool | None:
    """Whether the run's driver still runs (None: it runs on another machine, which this one cannot tell)."""
    if run.get("host") != socket.gethostname():
        return None
    pid = run.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**22:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
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


def _run_line(run: dict[str, Any]) -> tuple[str, bool]:
    """The last run's line, and whether it may still be going on."""
    now = time.time()
    finished, stopped, started = _number(run.get("finished")), _number(run.get("stopped")), _number(run.get("started"))
    alive = _alive(run)
    going = False
    if finished is not None:
        state = f"finished {_ago(now - finished)} ago"
    elif stopped is not None:
        state = f"stopped {_ago(now - stopped)} ago ({run.get('reason')}); run the same command again to resume"
    elif alive is False:
        state = "stopped before it finished (its process ended); run the same command again to resume"
    else:
        going = True
        state = f"running for {_ago(now - started)}" if started is not None else "running"
        state += "" if alive else f" on {run.get('host')} (pid {run.get('pid')})"
    workers = run.get("workers")
    return f"last run: executor {run.get('executor')}, {workers or 'cluster-sized'} at once; {state}", going


def status(out: Path) -> str:
    out = Path(out)
    if not (out / META).is_file():
        raise XLTError(f"{out} holds no matrix ({META} is missing); give the output directory of an xlt matrix run")
    board = Board.of(out)
    run, stages, running = board.run(), board.stages(), board.running()
    lines = [f"matrix {out}"]
    going = True
    if run is not None:
        line, going = _run_line(run)
        lines.append(line)
    lines.append(f"{'stage':<12}{'done':>6}{'running':>9}{'failed':>8}{'left':>6}")
    failures, now = [], time.time()
    for stage in STAGES:
        jobs = stages.get(stage)
        if jobs is None:
            continue
        counts = dict.fromkeys(COUNTED, 0)
        for name, job in jobs.items():
            state = job.get("state")
            state = state if isinstance(state, str) and state in counts else "left"
            if state == "left" and name in running and going:
                state = "running"
            counts[state] += 1
            if state == "failed":
                failures.append(f"  {stage} {name}: {job.get('error')}")
        lines.append(
            "".join([f"{stage:<12}", *(f"{counts[k]:>{w}}" for k, w in zip(COUNTED, (6, 9, 8, 6), strict=True))])
        )
    for name, marker in running.items():
        entry = stages.get(str(marker.get("stage")), {}).get(name, {})
        if entry.get("state", "left") != "left":
            continue
        since = _number(marker.get("since"))
        how = f"for {_ago(now - since)}" if since is not None else ""
        what = "running" if going else "interrupted"
        lines.append(f"  {what}: {name} on {marker.get('worker')} {how} (attempt {marker.get('attempt')})")
    if failures:
        lines.append("failed:")
        lines.extend(failures)
    rows = read_rows(out)
    ok = sum(r.get("status") == "ok" for r in rows)
    lines.append(f"cells stored: {ok} evaluated, {len(rows) - ok} could not be")
    return "\n".join(lines)
