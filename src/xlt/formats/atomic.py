"""Atomic writes of files and directories, and the rule that xlt only ever touches what it wrote.

A reader sees the old file or directory or the complete new one, never a half. Every temporary is named
``.xlt-tmp-PID-TOKEN-NAME`` (``.xlt-old-...`` for a save moved aside, ``.xlt-del-...`` for one being deleted), a
name nobody else uses, and
carries its writer's process id. A killed writer's temporaries are deleted only in directories xlt created
(or adopted while empty) and marked with ``OWNER_MARK``; in any other directory they are left for the user.
A directory is replaced only when it is an earlier save of the same kind holding nothing that the new save
does not write; everything else is refused before anything is written.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from xlt.errors import FormatError, XLTError
from xlt.paths import active_root, check_write, inside

OWNER_MARK = ".xlt-owned"
_TEMPORARY = re.compile(r"^\.xlt-(tmp|old|del)-(\d{1,10})-[0-9a-f]{8}-(.+)$")


def temporary_name(path: Path, what: str = "tmp") -> Path:
    return Path(path).with_name(f".xlt-{what}-{os.getpid()}-{secrets.token_hex(4)}-{Path(path).name}")


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        pass  # another user's process (or no pid a process can hold): treated as running, so never deleted
    return True


def owns(directory: Path) -> bool:
    """Whether xlt created ``directory`` (or adopted it while it was empty) and marked it as its own."""
    mark = Path(directory) / OWNER_MARK
    return mark.is_file() and not mark.is_symlink()


def _mark(directory: Path, *, checked: bool = True) -> None:
    mark = Path(directory) / OWNER_MARK
    if checked:
        check_write(mark)
    if not mark.exists():
        mark.write_text("This directory was created by xlt; xlt may clean up its own temporaries here.\n")


def _leftover(path: Path) -> bool:
    """A temporary whose writer no longer runs (killed mid-write)."""
    match = _TEMPORARY.match(Path(path).name)
    return match is not None and not _running(int(match.group(2)))


def contents(directory: Path) -> list[Path]:
    """What ``directory`` holds apart from the owner mark and dead writers' temporaries (a running writer's
    temporary counts: another process is writing there)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    if not owns(directory):  # in a directory of someone else's, even a name like xlt's is theirs
        return list(directory.iterdir())
    return [entry for entry in directory.iterdir() if entry.name != OWNER_MARK and not _leftover(entry)]


def make_dir(directory: Path, *, adopt: bool = False) -> Path:
    """Create ``directory`` and any missing parents, marking each one created as xlt's own.

    An existing directory is left as it is; with ``adopt`` (a directory the user named as the output of a
    command) an empty one is marked as xlt's own, since nothing of anyone's is in it."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise XLTError(f"{directory} is a file, not a directory; choose a directory path")
    missing = []
    for level in (directory, *directory.parents):
        if level.exists() or level.is_symlink():
            if not level.is_dir():
                raise XLTError(f"{level} is a file, not a directory; choose another path for {directory}")
            break
        missing.append(level)
    root = active_root()
    for level in reversed(missing):
        parent_of_root = root is not None and inside(level, root)  # the root's missing parents may be created
        if not parent_of_root:
            check_write(level)
        level.mkdir(exist_ok=True)
        _mark(level, checked=not parent_of_root)
    if adopt and not missing and not owns(directory) and not any(directory.iterdir()):
        _mark(directory)
    return directory


def clear_leftovers(directory: Path) -> list[Path]:
    """Delete what killed xlt writers left in ``directory`` (only if xlt owns it); return its content.

    A temporary of a process that still runs is kept: it may be a write in progress.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    if owns(directory):
        for entry in directory.iterdir():
            if _leftover(entry):
                check_write(entry)
                kind, name = _TEMPORARY.match(entry.name).group(1, 3)  # type: ignore[union-attr]
                if kind == "old" and entry.is_dir() and not (directory / name).exists():
                    # killed between moving the previous save aside and moving the new one in: the previous
                    # save is complete, so it goes back
                    os.replace(entry, directory / name)
                elif entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
    return contents(directory)


def check_replaceable(target: Path, marker: str) -> None:
    """Refuse to replace a directory that holds anything but an earlier save of the same kind (``marker``)."""
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink():
        raise FormatError(f"{target} is a symbolic link; xlt saves only to a real directory (choose another path)")
    if not target.is_dir():
        raise FormatError(f"{target} is a file, not a directory; choose a directory to save to")
    if contents(target) and not (target / marker).is_file():
        raise FormatError(
            f"{target} is not empty and holds no {marker}: it is not an earlier save, so xlt will not replace it "
            "(choose a new or empty directory)"
        )


def _umask() -> int:
    try:  # read without changing it (os.umask can only be read by setting it, racing other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_umask_allows(root: Path) -> None:
    """Give what xlt saved the permissions the user's umask asks for (some writers, such as safetensors',
    create files readable by their owner only, which a colleague sharing the results could not read)."""
    mask = _umask()
    for path in (root, *root.rglob("*")):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _new_directory(path: Path) -> Path:
    # os.mkdir applies the umask, so saved directories are as readable as the user's other files
    # (tempfile.mkdtemp would make them private to the owner).
    os.mkdir(check_write(path))
    return path


@contextmanager
def atomic_directory(target: Path, *, marker: str) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it replaces ``target`` in one rename.

    ``target`` may only be new, empty, or an earlier save holding ``marker`` and nothing the new save does not
    write: anything else is refused, before the work and again at the swap.
    """
    target = Path(target)
    check_write(target)
    check_replaceable(target, marker)
    make_dir(target.parent)
    clear_leftovers(target.parent)
    tmp = _new_directory(temporary_name(target))
    try:
        yield tmp
        _swap(tmp, target, marker)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap(tmp: Path, target: Path, marker: str) -> None:
    _as_umask_allows(tmp)
    if not target.exists():
        os.replace(tmp, target)
        return
    os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))  # the directory it replaces keeps its permissions
    check_replaceable(target, marker)
    written = {p.name for p in tmp.iterdir()}
    foreign = sorted(p.name for p in contents(target) if p.name not in written)
    if foreign:
        raise FormatError(
            f"{target} holds {', '.join(foreign[:3])}, which xlt did not write there; move it away or save "
            "to another directory"
        )
    old = temporary_name(target, "old")
    os.replace(target, check_write(old))
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def remove_tree(directory: Path) -> None:
    """Delete a directory xlt wrote, atomically as far as a reader can tell: it is renamed away first, so a kill
    mid-delete leaves a temporary (cleared later), never a half-deleted directory under its name."""
    directory = Path(directory)
    if not directory.is_dir() or directory.is_symlink():
        return
    doomed = check_write(temporary_name(directory, "del"))
    os.replace(directory, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a temporary name beside ``path``, sync it, rename it over ``path``."""
    path = check_write(Path(path))
    if path.is_dir():
        raise XLTError(f"{path} is a directory; xlt writes a file there, so move it away or choose another path")
    tmp = temporary_name(path)
    try:
        write(tmp)
        _as_umask_allows(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))
