"""Process ids for the tests of what a killed writer leaves behind."""

from __future__ import annotations

import subprocess
import sys


def dead_pid() -> int:
    """A process id that no process holds now: one of a child that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
