"""The report of a matrix output directory, rendered from its store (no recomputation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from xlt.errors import XLTError
from xlt.formats.atomic import atomic_write_text, contents, make_dir, owns
from xlt.matrix.config import register_languages
from xlt.matrix.report import PAGE, Report, render_report
from xlt.matrix.store import read_meta, read_rows
from xlt.paths import writing_under

CONFIG_FILE = "config.yaml"


def store_rows(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(finished rows, error rows)`` of the store's own recipe (rows of another recipe are never read)."""
    meta = read_meta(directory)
    rows = [r for r in read_rows(directory) if r.get("recipe") == meta.recipe]
    return [r for r in rows if r.get("status") == "ok"], [r for r in rows if r.get("status") != "ok"]


def publish(
    directory: Path,
    rows: list[dict[str, Any]] | None = None,
    errors: list[dict[str, Any]] | None = None,
    out: Path | None = None,
    notes: list[str] | None = None,
    title: str = "Cross-lingual transfer",
) -> Report:
    """Render ``directory``'s report into ``out`` (default ``directory/report``) from the given rows, or from
    every finished row of its store; the page shows the config that produced them."""
    directory = Path(directory)
    if rows is None:
        rows, errors = store_rows(directory)
    target = Path(out) if out is not None else directory / "report"
    if out is not None:
        check_report_dir(target)
    config_path = directory / CONFIG_FILE
    config: dict[str, Any] | str = (
        config_path.read_text(encoding="utf-8") if config_path.is_file() else read_meta(directory).config
    )
    if isinstance(config, str):
        recorded = yaml.safe_load(config) or {}
        register_languages(recorded.get("languages") or {})  # groups of the config's own languages
        if notes is None:
            notes = list(recorded.get("notes") or [])
    notes = list(notes or [])
    for row in errors or []:
        notes.append(
            f"not evaluated: {row['task']} {row['source']}→{row['target']} {row['configuration']} seed {row['seed']}: "
            f"{row.get('error')}"
        )
    for row in rows:
        unseen = row.get("unseen_labels") or {}
        if unseen.get("count"):
            notes.append(
                f"{row['task']} {row['source']}→{row['target']} {row['configuration']} seed {row['seed']}: "
                f"{unseen['count']} of {row.get('examples', '?')} test examples carry labels {unseen['labels'][:5]} "
                "the task representation was never trained on; they are scored wrong"
            )
    with writing_under(target):
        return render_report(rows, target, config=config, notes=notes, title=title)


def check_report_dir(target: Path) -> None:
    """A report goes to a new or empty directory, or replaces an earlier report that xlt wrote there."""
    if target.exists() and not target.is_dir():
        raise XLTError(f"--out {target} is a file; give a directory for the report")
    if contents(target) and not (owns(target) and (target / PAGE).is_file()):
        raise XLTError(
            f"--out {target} is not empty and holds no report of xlt's; give a new or empty directory "
            "(xlt never writes into a directory of yours)"
        )


def write_config(directory: Path, config: dict[str, Any]) -> None:
    make_dir(Path(directory))
    atomic_write_text(Path(directory) / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
