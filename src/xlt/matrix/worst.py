"""The worst examples of a matrix's cells, from the raw outputs evaluation keeps (``outputs/``): what a model
got most wrong, per cell, to read before trusting a number."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from xlt.errors import XLTError

OUTPUTS = "outputs"


def cell_outputs(results: Path) -> list[tuple[dict[str, str], Path]]:
    """Every cell's outputs file, with the cell it belongs to (task, source, configuration slug and seed,
    target)."""
    root = Path(results) / OUTPUTS
    found = []
    for path in sorted(root.glob("*/*/*/*.jsonl")):
        task, source, run = path.parts[-4], path.parts[-3], path.parts[-2]
        found.append(({"task": task, "source": source, "run": run, "target": path.stem}, path))
    return found


def _slug(name: str) -> str:
    # The rule configurations name their run directories by (``Configuration.slug``): "SLP+TP" -> "slp-tp",
    # "my_conf" -> "my-conf".
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "configuration"


def read_outputs(path: Path) -> list[dict[str, Any]]:
    """A cell's kept outputs, one example a line, each with a numeric ``score``; a line that is not one (cut short
    by a stopped evaluation, or scored ``null``) is an error naming the file and line."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise XLTError(f"{path}:{number} is not a JSON line; evaluate the cell again") from None
        if not isinstance(row, dict):
            raise XLTError(f"{path}:{number} is not an example's record; evaluate the cell again")
        score = row.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score):
            raise XLTError(f"{path}:{number} is not scored (score {json.dumps(score)}); evaluate the cell again")
        rows.append(row)
    return rows


def _clip(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def worst_examples(
    results: Path,
    count: int,
    *,
    task: str | None = None,
    target: str | None = None,
    configuration: str | None = None,
    width: int = 100,
) -> str:
    """The ``count`` lowest-scoring examples of each cell (filtered by task, target and configuration name or
    slug), as text."""
    if count < 1:
        raise XLTError(f"--worst {count}: give 1 or more examples per cell")
    cells = cell_outputs(results)
    if not cells:
        raise XLTError(f"{results} holds no kept outputs ({OUTPUTS}/); evaluate a matrix there first")
    wanted_run = _slug(configuration) if configuration else None
    lines: list[str] = []
    for cell, path in cells:
        if (task and cell["task"] != task) or (target and cell["target"] != target):
            continue
        if wanted_run and not cell["run"].startswith(f"{wanted_run}-seed"):
            continue
        rows = read_outputs(path)
        rows.sort(key=lambda row: (row["score"], str(row.get("id", ""))))
        lines.append(f"== {cell['task']} {cell['source']}->{cell['target']} {cell['run']} ({len(rows)} examples)")
        for row in rows[:count]:
            lines.append(f"  score {row['score']:.3f}  input: {_clip(row.get('input', ''), width)}")
            lines.append(f"    reference: {_clip(row.get('reference'), width)}")
            if row.get("generation") is not None:
                lines.append(f"    generated: {_clip(row['generation'], width)}")
            lines.append(f"    predicted: {_clip(row.get('prediction'), width)}")
    if not lines:
        raise XLTError("no cell matches --task/--target/--configuration; check the names (see the report's tables)")
    return "\n".join(lines)
