"""Process ids for the tests of what a killed writer leaves behind."""

from __future__ import annotations

import subprocess
import sys


def dead_pid() -> int:
    """A process id that no process holds now: one of a child that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leftover(directory, name: str, pid: int, *, kind: str = "tmp", is_dir: bool = False):
    """What an xlt writer with process id ``pid`` leaves when it is killed mid-write of ``directory/name``."""
    path = directory / f".xlt-{kind}-{pid}-0123abcd-{name}"
    if is_dir:
        path.mkdir()
    else:
        path.write_text("{")
    return path


def own(directory):
    """``directory`` created and marked as xlt's own (as xlt does before it writes anything there)."""
    from xlt.formats.atomic import make_dir

    return make_dir(directory)
