"""The tidy result store of a matrix: one JSON row per cell in ``results.jsonl``, beside ``matrix.json`` (the
recipe the rows were computed under).

Every update rewrites the file to a temporary name, syncs it and renames it over the old one, so a run killed
at any instant leaves the previous complete file or the new complete file, never a torn one. A store belongs
to one recipe: opening it with another is refused, so results of different configs never mix.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from xlt.errors import XLTError
from xlt.formats.atomic import atomic_write_text, clear_leftovers, is_temporary
from xlt.training.run import flat

RESULTS = "results.jsonl"
META = "matrix.json"
LOCK = ".matrix.lock"
Key = tuple[str, str, str, str, int]  # task, source, target, configuration, seed


def key_of(row: dict[str, Any]) -> Key:
    return (row["task"], row["source"], row["target"], row["configuration"], int(row["seed"]))


@dataclass
class StoreMeta:
    recipe: str
    config: dict[str, Any]


def read_meta(directory: Path) -> StoreMeta:
    path = Path(directory) / META
    if not path.is_file():
        raise XLTError(f"{directory} holds no matrix results ({META} is missing); run `xlt matrix CONFIG` first")
    data = json.loads(path.read_text(encoding="utf-8"))
    return StoreMeta(data["recipe"], data["config"])


def read_rows(directory: Path) -> list[dict[str, Any]]:
    path = Path(directory) / RESULTS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class ResultStore:
    """Rows by cell key. ``open`` takes the directory's lock for the life of the store (one run at a time)."""

    def __init__(self, directory: Path, recipe: str, rows: list[dict[str, Any]], lock: TextIO) -> None:
        self.directory, self.recipe, self._lock = Path(directory), recipe, lock
        self._rows: dict[Key, dict[str, Any]] = {key_of(r): r for r in rows}

    @classmethod
    def open(cls, directory: Path, recipe: str, config: dict[str, Any]) -> ResultStore:
        directory = Path(directory)
        meta_path = directory / META
        # Temporaries of a write (a killed writer's are deleted) and the lock are not results; anything else is
        # someone's files.
        foreign = [p for p in clear_leftovers(directory) if p.name != LOCK and not is_temporary(p)]
        if not meta_path.is_file() and foreign:
            raise XLTError(f"{directory} is not empty and holds no matrix results; choose another output directory")
        directory.mkdir(parents=True, exist_ok=True)
        lock = (directory / LOCK).open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise XLTError(
                f"another `xlt matrix` is running in {directory}; wait for it or use another directory"
            ) from None
        try:
            if meta_path.is_file():
                meta = read_meta(directory)
                if meta.recipe != recipe:
                    old, new = flat(meta.config), flat(config)
                    differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                    raise XLTError(
                        f"{directory} holds results of a different config (it differs in "
                        f"{', '.join(differ[:6]) or '?'}); use another output directory, or delete that one to start "
                        "over"
                    )
            else:
                atomic_write_text(
                    meta_path, json.dumps({"recipe": recipe, "config": config}, indent=2, ensure_ascii=False)
                )
            return cls(directory, recipe, read_rows(directory), lock)
        except BaseException:
            lock.close()
            raise

    def close(self) -> None:
        self._lock.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def done(self, key: Key) -> bool:
        row = self._rows.get(key)
        return row is not None and row.get("status") == "ok"

    def get(self, key: Key) -> dict[str, Any] | None:
        return self._rows.get(key)

    def rows(self) -> list[dict[str, Any]]:
        return [self._rows[k] for k in sorted(self._rows)]

    def put(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add or replace rows (a finished cell replaces an earlier error of the same cell)."""
        for row in rows:
            self._rows[key_of(row)] = {**row, "recipe": self.recipe}
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in self.rows())
        atomic_write_text(self.directory / RESULTS, text)
