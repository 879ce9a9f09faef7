"""The worst examples of a matrix's cells, from the raw outputs evaluation keeps (``outputs/``): what a model
got most wrong, per cell, to read before trusting a number."""

from __future__ import annotations

import json
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
    wanted_run = configuration.lower().replace("+", "-") if configuration else None
    lines: list[str] = []
    for cell, path in cells:
        if (task and cell["task"] != task) or (target and cell["target"] != target):
            continue
        if wanted_run and not cell["run"].startswith(f"{wanted_run}-seed"):
            continue
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows.sort(key=lambda row: (row.get("score", 0.0), str(row.get("id", ""))))
        lines.append(f"== {cell['task']} {cell['source']}->{cell['target']} {cell['run']} ({len(rows)} examples)")
        for row in rows[:count]:
            lines.append(f"  score {row.get('score', 0.0):.3f}  input: {_clip(row.get('input', ''), width)}")
            lines.append(f"    reference: {_clip(row.get('reference'), width)}")
            if row.get("generation") is not None:
                lines.append(f"    generated: {_clip(row['generation'], width)}")
            lines.append(f"    predicted: {_clip(row.get('prediction'), width)}")
    if not lines:
        raise XLTError("no cell matches --task/--target/--configuration; check the names (see the report's tables)")
    return "\n".join(lines)
