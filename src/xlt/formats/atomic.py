"""Atomic writes of files and directories: a reader sees the old one or the complete new one, never a half."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from xlt.errors import FormatError

# Temporaries of the writes below carry their writer's process id: ``.NAME.tmp-PID`` or ``.NAME.tmp-PID-XXXX``.
_TEMPORARY = re.compile(r"^\..+\.(?:tmp|old)-(\d+)(?:-[^/]*)?$")


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary of the writes below (of a running writer or not)."""
    return _TEMPORARY.match(Path(path).name) is not None


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it runs
    return True


def clear_leftovers(directory: Path) -> list[Path]:
    """Delete what writers that no longer run (killed mid-write) left in ``directory``; return what remains.

    A temporary of a process that still runs is kept: it may be a write in progress.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    remaining = []
    for entry in directory.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match and not _running(int(match.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        else:
            remaining.append(entry)
    return remaining


def check_replaceable(target: Path, marker: str) -> None:
    """Refuse to replace a directory that holds anything but an earlier save of the same kind (``marker``)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise FormatError(f"{target} is a file, not a directory; choose a directory to save to")
    if any(target.iterdir()) and not (target / marker).is_file():
        raise FormatError(
            f"{target} is not empty and holds no {marker}: it is not an earlier save, so xlt will not replace it "
            "(choose a new or empty directory)"
        )


@contextmanager
def atomic_directory(target: Path, *, marker: str) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it replaces ``target`` in one rename.

    ``target`` may only be new, empty, or an earlier save holding ``marker``: anything else is refused.
    """
    target = Path(target)
    check_replaceable(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a temporary name beside ``path`` (``.NAME.tmp-PID``), sync it, rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))
