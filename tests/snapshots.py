"""A directory tree as data, to prove a command left everything it was not asked to write as it was."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Relative path -> (type, content or link target, mode); links are never followed."""
    found: dict[str, tuple[Any, ...]] = {}

    def walk(directory: Path) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            info = entry.stat(follow_symlinks=False)
            rel = os.path.relpath(entry.path, root)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                found[rel] = ("link", os.readlink(entry.path), None)
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir", None, mode)
                walk(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                found[rel] = ("file", Path(entry.path).read_bytes(), mode)
            else:
                found[rel] = ("other", None, mode)

    walk(Path(root))
    return found
