"""The tidy result store of a matrix: one JSON row per cell in ``results.jsonl``, beside ``matrix.json`` (the
recipe the rows were computed under).

Every update rewrites the file to a temporary name, syncs it and renames it over the old one, so a run killed
at any instant leaves the previous complete file or the new complete file, never a torn one. A store belongs
to one recipe: opening it with another is refused, so results of different configs never mix.

A rep store (``rep_store``) is a directory of language representations and LM heads shared by matrices, each
under a key of what determines it; it is only ever added to.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from xlt.errors import XLTError
from xlt.formats.atomic import atomic_write_text, clear_leftovers, contents, make_dir, owns
from xlt.paths import check_write, inside, short
from xlt.records import differing_keys, flat, named, same_config

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
    inputs: dict[str, str] = field(default_factory=dict)  # input key -> digest the results were computed from
    extra: dict[str, Any] = field(default_factory=dict)  # facts of the run (e.g. the LM head's languages)

    def to_json(self) -> str:
        data = {"recipe": self.recipe, "config": self.config, "inputs": self.inputs, **self.extra}
        return json.dumps(data, indent=2, ensure_ascii=False)


def read_meta(directory: Path) -> StoreMeta:
    path = Path(directory) / META
    if not path.is_file():
        raise XLTError(f"{directory} holds no matrix results ({META} is missing); run `xlt matrix CONFIG` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        extra = {k: v for k, v in data.items() if k not in ("recipe", "config", "inputs")}
        return StoreMeta(str(data["recipe"]), dict(data["config"]), dict(data.get("inputs") or {}), extra)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise XLTError(
            f"{path} is damaged ({type(exc).__name__}: {short(str(exc))}); it was not written by xlt as it is now: "
            "restore it, or use another output directory"
        ) from None


def read_rows(directory: Path) -> list[dict[str, Any]]:
    path = Path(directory) / RESULTS
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise XLTError(f"{path} is not UTF-8 text ({exc.reason}); restore it or delete it to recompute") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key_of(row)
        except (ValueError, KeyError, TypeError) as exc:
            raise XLTError(
                f"{path}, line {number}: not a result row ({type(exc).__name__}: {short(str(exc))}); delete that line "
                "and run again to recompute its cell"
            ) from None
        rows.append(row)
    return rows


def _same(recorded: dict[str, Any], config: dict[str, Any], ignore: tuple[str, ...]) -> bool:
    return same_config({k: v for k, v in recorded.items() if k not in ignore}, config)


def _migrated(directory: Path, meta: StoreMeta, recipe: str, config: dict[str, Any]) -> StoreMeta:
    """A store written when the recipe held keys it no longer does (``tasks`` until each task's spec became its
    cells' own): the same results under the new recipe."""
    rows = [{**row, "recipe": recipe} for row in read_rows(directory)]
    meta = StoreMeta(recipe, config, meta.inputs, meta.extra)
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    atomic_write_text(directory / RESULTS, text)
    atomic_write_text(directory / META, meta.to_json())
    return meta


def check_store_dir(directory: Path, *, clear: bool = False) -> None:
    """A store goes to a new or empty directory, or to one holding a store: anything else is someone's files."""
    if directory.exists() and not directory.is_dir():
        raise XLTError(f"output_dir {directory} is a file, not a directory; choose a directory path")
    meta_path = directory / META
    # The lock is xlt's only in a directory of xlt's: elsewhere a ".matrix.lock" is someone else's file.
    ours = meta_path.is_file() or owns(directory)
    remaining = clear_leftovers(directory) if clear else contents(directory)
    foreign = [p for p in remaining if p.name != LOCK or not ours]
    if not meta_path.is_file() and foreign:
        raise XLTError(f"{directory} is not empty and holds no matrix results; choose another output directory")


REP_STORE = "xlt_rep_store.json"


def check_rep_store(directory: Path, output_dir: Path) -> None:
    """A rep store is a new or empty directory, or one xlt made a rep store: anything else is someone's files."""
    if directory.exists() and not directory.is_dir():
        raise XLTError(f"rep_store {directory} is a file, not a directory; choose a directory path")
    if inside(directory, output_dir) and inside(output_dir, directory):
        raise XLTError(f"rep_store {directory} is the output directory; give the shared store a directory of its own")
    if not (directory / REP_STORE).is_file() and contents(directory):
        raise XLTError(
            f"rep_store {directory} is not empty and holds no rep store of xlt's; choose a new or empty directory "
            "or an existing rep store"
        )


def open_rep_store(directory: Path, output_dir: Path) -> Path:
    """Create (or check) a rep store shared by matrices, marked as xlt's own like an output directory; its
    representations are never deleted, since other matrices may use them (a changed input yields a new key)."""
    check_rep_store(directory, output_dir)
    make_dir(directory, adopt=True)
    marker = directory / REP_STORE
    if not marker.is_file():
        text = {"format": "xlt-rep-store", "layout": {"language": "{language}-{kind}-{key}", "lm-head": "{key}"}}
        atomic_write_text(marker, json.dumps(text, indent=2))
    return directory


class ResultStore:
    """Rows by cell key. ``open`` takes the directory's lock for the life of the store (one run at a time)."""

    def __init__(self, directory: Path, meta: StoreMeta, rows: list[dict[str, Any]], lock: TextIO) -> None:
        self.directory, self.meta, self._lock = Path(directory), meta, lock
        self.recipe = meta.recipe
        # The recipe values a migrated store was recorded under (what it held before, such as its tasks' specs).
        self.previous: dict[str, Any] | None = None
        self._rows: dict[Key, dict[str, Any]] = {key_of(r): r for r in rows}

    @classmethod
    def open(cls, directory: Path, recipe: str, config: dict[str, Any], ignore: tuple[str, ...] = ()) -> ResultStore:
        """Open (or create) the store of ``recipe`` (``config``: the recipe's values). A store recorded with
        other values is refused; one whose values differ only in keys ``ignore`` names (keys that no longer
        belong to the recipe) is taken over under the new recipe, its rows kept."""
        directory = Path(directory)
        meta_path = directory / META
        check_store_dir(directory, clear=True)
        make_dir(directory, adopt=True)
        lock = check_write(directory / LOCK).open("a")  # never truncated: flock needs no content
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise XLTError(
                f"another `xlt matrix` is running in {directory}; wait for it or use another directory"
            ) from None
        try:
            meta, previous = StoreMeta(recipe, config), None
            if meta_path.is_file():
                meta = read_meta(directory)
                if meta.recipe != recipe and _same(meta.config, config, ignore):
                    previous = meta.config
                    meta = _migrated(directory, meta, recipe, config)
                if meta.recipe != recipe:
                    # keys that left the recipe (a grid axis such as tasks) are no difference to name
                    differ = differing_keys(flat(meta.config), flat(config), lambda k: k.split(".")[0] in ignore)
                    raise XLTError(
                        f"{directory} holds results of a different config (it differs in {named(differ) or '?'}); "
                        "use another output directory, or delete that one to start over"
                    )
            else:
                atomic_write_text(meta_path, meta.to_json())
            store = cls(directory, meta, read_rows(directory), lock)
            store.previous = previous
            return store
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

    def save_meta(self) -> None:
        atomic_write_text(self.directory / META, self.meta.to_json())

    def drop(self, keys: Iterable[Key]) -> None:
        """Forget cells (their inputs changed: they are computed again)."""
        for key in keys:
            self._rows.pop(key, None)
        self._write()

    def put(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add or replace rows (a finished cell replaces an earlier error of the same cell)."""
        for row in rows:
            self._rows[key_of(row)] = {**row, "recipe": self.recipe}
        self._write()

    def _write(self) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in self.rows())
        atomic_write_text(self.directory / RESULTS, text)
