"""What a matrix's results were computed from: the content of its task files and corpora.

Each input has a key (``corpus:sk``, ``task:emoji:train:en``, ``task:emoji:test:sw``) and a digest (sha256 of
its files, or of a hub dataset's spec, which is all that can be known of it offline). The store records the
digests it computed with; a rerun compares them with today's and finds what changed, and ``stale`` says which
representations and cells depend on a changed input.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlt.digest import file_digest


@dataclass(frozen=True)
class Input:
    key: str
    what: str  # the path or dataset, as a message names it
    digest: str


def corpus_input(language: str, spec: dict[str, Any], files: list[Path]) -> Input:
    """A corpus: its spec (how it is read) and the content of its files."""
    described = {k: v for k, v in spec.items() if k != "files"}
    described["files"] = [file_digest(f) if f.is_file() else f"missing:{f.name}" for f in files]
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    what = ", ".join(str(f) for f in files) if files else str(spec.get("dataset"))
    return Input(f"corpus:{language}", what, digest)


def file_input(key: str, path: Path) -> Input | None:
    """A task file, or None where it does not exist (its cells report that on their own)."""
    return Input(key, str(path), file_digest(path)) if path.is_file() else None


LM_HEAD = "lm_head"


def task_key(task: str, split: str, language: str) -> str:
    return f"task:{task}:{split}:{language}"


@dataclass
class Changes:
    """Inputs whose content differs from what the store's results were computed from."""

    changed: list[Input] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changed)

    def corpora(self) -> set[str]:
        return {i.key.split(":", 1)[1] for i in self.changed if i.key.startswith("corpus:")}

    def parallel(self) -> set[str]:
        """Languages whose parallel text changed."""
        return {i.key.split(":", 1)[1] for i in self.changed if i.key.startswith("parallel:")}

    def lm_head(self) -> bool:
        """Whether a given LM head (``lm_head.path``) changed: every language representation depends on it."""
        return any(i.key == LM_HEAD for i in self.changed)

    def task_files(self, split: str) -> set[tuple[str, str]]:
        """``(task, language)`` pairs whose ``split`` file changed."""
        out = set()
        for item in self.changed:
            parts = item.key.split(":")
            if parts[0] == "task" and parts[2] == split:
                out.add((parts[1], parts[3]))
        return out

    def describe(self) -> str:
        return ", ".join(i.what for i in self.changed[:6]) + (" ..." if len(self.changed) > 6 else "")


def compare(recorded: dict[str, str], current: list[Input]) -> Changes:
    return Changes([i for i in current if i.key in recorded and recorded[i.key] != i.digest])
