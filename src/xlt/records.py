"""What xlt records about its work as JSON, and how a recorded config is compared with the one wanted now.

Run directories (``run.json``) and matrix stores (``matrix.json``) both record the config they were computed
under, and both refuse to serve work of another config. They compare the two flattened to dotted keys
(``run.train.lr``), so that a refusal names the fields that differ rather than saying only "different".
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

# How many differing keys an error names: enough to see what changed, few enough to stay one line.
NAMED_KEYS = 6


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: dataclasses as dicts, tuples as lists, paths as strings, keys as strings."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``run.train.lr``), so that a difference names the field that differs."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def same_config(recorded: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether two configs hold the same values, key for key (a key on one side only is a difference)."""
    return flat(recorded) == flat(wanted)


def without_fields(flat_config: dict[str, Any], fields: Collection[str]) -> dict[str, Any]:
    """``flat_config`` less every dotted key whose last part names one of ``fields``."""
    return {k: v for k, v in flat_config.items() if k.split(".")[-1] not in fields}


def _nothing_ignored(key: str) -> bool:
    return False


def differing_keys(
    recorded: dict[str, Any], wanted: dict[str, Any], ignored: Callable[[str], bool] = _nothing_ignored
) -> list[str]:
    """The dotted keys of two flattened configs whose values differ, sorted, less those ``ignored`` accepts.

    A key on one side only differs unless its value on that side is None: it reads as absent on the other.
    """
    keys = set(recorded) | set(wanted)
    return sorted(k for k in keys if not ignored(k) and recorded.get(k) != wanted.get(k))


def named(keys: list[str]) -> str:
    """The first few differing keys, for an error message."""
    return ", ".join(keys[:NAMED_KEYS])
