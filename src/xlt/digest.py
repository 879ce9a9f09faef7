"""Content digests of input files and directories: what results record about the data they were computed from."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CACHE: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, cached per (path, size, modification time) for the life of the process."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        _CACHE[key] = h.hexdigest()
    return _CACHE[key]


def digest(path: Path) -> str:
    """sha256 of a file, or of a directory's files (names and contents, sorted; hidden bookkeeping skipped)."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    h = hashlib.sha256()
    for entry in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(entry.relative_to(path).as_posix().encode() + b"\0" + file_digest(entry).encode() + b"\0")
    return h.hexdigest()
