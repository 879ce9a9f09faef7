"""The report of a matrix output directory, rendered from its store (no recomputation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from xlt.errors import XLTError
from xlt.formats.atomic import atomic_write_text, contents, make_dir, owns
from xlt.matrix.config import register_languages
from xlt.matrix.language_modelling import language_modelling_section
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
    check_report_dir(target, legacy=out is None)
    config, recorded = _recorded_config(directory)
    if recorded is not None:
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
    extra = [section] if (section := language_modelling_section(directory)) is not None else []
    with writing_under(target):
        return render_report(rows, target, config=config, notes=notes, title=title, extra_sections=extra)


def _recorded_config(directory: Path) -> tuple[dict[str, Any] | str, dict[str, Any] | None]:
    """The config text the report shows and its data; the store's recipe where config.yaml is damaged."""
    path = directory / CONFIG_FILE
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
            data = yaml.safe_load(text)
        except (yaml.YAMLError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict):
            return text, data
    return read_meta(directory).config, None


# What a report directory holds; one written before directories were marked as xlt's is known by these alone.
_REPORT_FILES = (".md", ".csv", ".tex", ".png")


def _written_by_xlt(page: Path) -> bool:
    """A report page as xlt writes it: its title, then the line saying when and from what it was generated."""
    try:
        lines = [line for line in page.read_text(encoding="utf-8").splitlines()[:4] if line.strip()]
    except (OSError, UnicodeDecodeError):
        return False
    return len(lines) >= 2 and lines[0].startswith("# ") and lines[1].startswith("Generated ")


def check_report_dir(target: Path, *, legacy: bool = False) -> None:
    """A report goes to a new or empty directory, or replaces an earlier report that xlt wrote there."""
    if target.exists() and not target.is_dir():
        raise XLTError(f"report directory {target} is a file; give a directory for the report")
    found = contents(target)
    if not found or (owns(target) and (target / PAGE).is_file()):
        return
    earlier = legacy and _written_by_xlt(target / PAGE) and all(p.suffix in _REPORT_FILES for p in found)
    if not earlier:
        raise XLTError(
            f"report directory {target} is not empty and holds no report of xlt's; give a new or empty directory "
            "with --out (xlt never writes into a directory of yours)"
        )


def write_config(directory: Path, config: dict[str, Any]) -> None:
    make_dir(Path(directory))
    atomic_write_text(Path(directory) / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
