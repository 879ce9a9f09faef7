"""Names that become paths, and the roots that xlt's writes must stay inside.

A language code, a task, a configuration or a representation name ends up in a file name. Each is checked
once, where it enters (config, command line, API), against ``NAME``; every write then goes through
``check_write``, which proves its path lies inside the root the running command was given (its output
directory, the directory a representation is saved to, the report's directory). A write elsewhere is a bug,
and it is refused before anything is written.
"""

from __future__ import annotations

import os
import re
import reprlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from xlt.errors import XLTError

# One path segment: no separators, no dots that could climb (``..``), nothing hidden (a leading dot), no spaces.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")
MAX_NAME = 64

_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 60, 60, 6, 6, 3


def short(value: Any) -> str:
    """``repr(value)`` cut to a few dozen characters, so that an error never prints a huge value."""
    return _SHORT.repr(value)


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a safe path segment (letters, digits, '_', '-'); an XLTError naming ``what`` otherwise."""
    if not isinstance(value, str) or not NAME.fullmatch(value) or len(value) > MAX_NAME:
        raise XLTError(
            f"{what} {short(value)} may hold only letters, digits, '_' and '-' (up to {MAX_NAME}, starting with a "
            "letter or digit): it becomes part of file names"
        )
    return value


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` is ``root`` or lies under it, after resolving symbolic links and ``..``."""
    root, path = Path(os.path.realpath(root)), Path(os.path.realpath(path))
    return path == root or root in path.parents


def contained(root: Path, *parts: str) -> Path:
    """``root / parts...``, proven to stay inside ``root``."""
    path = Path(root).joinpath(*parts)
    if not inside(root, path):
        raise XLTError(f"refusing to write {path}: it is outside {root} (a name holds a path; rename it)")
    return path


_ROOTS: ContextVar[tuple[Path, ...]] = ContextVar("xlt_write_roots", default=())


@contextmanager
def writing_under(root: Path, *, independent: bool = False) -> Iterator[Path]:
    """Within this block every write xlt makes must stay inside ``root``, itself inside any enclosing root
    unless ``independent`` (a cache of xlt's own, such as the converted e5, which no command's output holds)."""
    root = Path(root)
    if not independent:
        check_write(root)
    token = _ROOTS.set((*_ROOTS.get(), root))
    try:
        yield root
    finally:
        _ROOTS.reset(token)


def check_write(path: Path) -> Path:
    """Refuse a write to ``path`` outside the innermost active root (no root active: any path is allowed)."""
    roots = _ROOTS.get()
    if roots and not inside(roots[-1], path):
        raise XLTError(
            f"refusing to write {path}: it is outside {roots[-1]}, the directory this command writes to "
            "(a name or path in the input leads outside it; fix that name)"
        )
    return Path(path)


def active_root() -> Path | None:
    roots = _ROOTS.get()
    return roots[-1] if roots else None
