"""The transfer-matrix report: a directory holding one Markdown page with every table, its plots and its files.

Layout of ``out_dir``::

    report.md                              the page (written last)
    results.csv                            every input row, flattened
    {task}-{source}-{metric}.md/.csv/.tex  one table
    {task}-{source}-{metric}-heatmap.png   targets × configurations
    {task}-{source}-{metric}-bars.png      the averages per configuration

Each file is written under a temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from xlt.formats.atomic import atomic_write_text, make_dir
from xlt.matrix.configurations import PAPER_NAMES
from xlt.matrix.plots import bar_plot, heatmap
from xlt.matrix.tables import (
    ReportError,
    Table,
    build_tables,
    check_rows,
    metric_names,
    order_configurations,
    order_targets,
    to_csv,
    to_latex,
    to_markdown,
)

__all__ = [
    "PAPER_NAMES",
    "Report",
    "ReportError",
    "Table",
    "bar_plot",
    "build_tables",
    "heatmap",
    "render_report",
    "to_csv",
    "to_latex",
    "to_markdown",
]

PAGE = "report.md"
RESULTS = "results.csv"


@dataclass
class Report:
    """What :func:`render_report` wrote: ``page`` is ``directory/report.md``; ``files`` lists every file, page last."""

    directory: Path
    page: Path
    files: list[Path]
    tables: list[Table]


def _safe(part: str) -> str:
    # portable file names: no separators, no leading dot (hidden files, '..'), never empty
    return re.sub(r"[^A-Za-z0-9._-]+", "_", part).lstrip(".") or "_"


def _stems(tables: list[Table]) -> list[str]:
    """One file stem per table; stems that sanitising made equal get a short hash of the original names."""
    stems = [f"{_safe(t.task)}-{_safe(t.source)}-{_safe(t.metric)}" for t in tables]
    seen: dict[str, int] = {}
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
    out = []
    for table, stem in zip(tables, stems, strict=True):
        if seen[stem] > 1:
            digest = hashlib.sha1(f"{table.task}\0{table.source}\0{table.metric}".encode()).hexdigest()[:8]
            stem = f"{stem}-{digest}"
        out.append(stem)
    return out


def _config_yaml(config: dict[str, Any] | str | None) -> str | None:
    if config is None:
        return None
    if isinstance(config, str):
        return config.rstrip("\n") + "\n"
    if isinstance(config, dict):
        try:
            return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError as error:
            raise ReportError(
                f"the config holds a value YAML cannot write ({error}); pass plain dicts, lists, strings and "
                "numbers, or the YAML text itself"
            ) from None
    raise ReportError(f"config must be a dict, a YAML string or None, not {type(config).__name__}")


def _fence(text: str) -> str:
    # a fence longer than any backtick run inside, so a config holding ``` cannot end the block early
    runs = [len(m) for m in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)


def results_csv(rows: list[dict[str, Any]]) -> str:
    """Every row flattened: identity, seed, recipe, one column per metric, examples, ``time_{phase}_s`` per phase,
    and, for rows that record it, the executor and workers that produced them."""
    metrics = metric_names(rows)
    phases = sorted({str(p) for row in rows for p in (row.get("time_s") or {})})
    with_recipe = any("recipe" in row for row in rows)
    with_run_by = any("run_by" in row for row in rows)
    targets = {t: i for i, t in enumerate(order_targets(str(r["target"]) for r in rows))}
    configurations = {c: i for i, c in enumerate(order_configurations(str(r["configuration"]) for r in rows))}

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        seed = row.get("seed")
        return (
            str(row["task"]),
            str(row["source"]),
            targets[str(row["target"])],
            configurations[str(row["configuration"])],
            (seed is None, not isinstance(seed, int | float), seed if isinstance(seed, int | float) else str(seed)),
        )

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["task", "source", "target", "configuration", "seed"]
    header += ["recipe"] if with_recipe else []
    by = ["executor", "workers"] if with_run_by else []
    writer.writerow([*header, *metrics, "examples", *(f"time_{p}_s" for p in phases), *by])
    for row in sorted(rows, key=key):
        times = row.get("time_s") or {}
        line = [row["task"], row["source"], row["target"], row["configuration"], row.get("seed")]
        line += [row.get("recipe")] if with_recipe else []
        line += [row["metrics"].get(m) for m in metrics]
        line += [row.get("examples")]
        line += [times.get(p) for p in phases]
        run_by = row.get("run_by") or {}
        line += [run_by.get("executor"), run_by.get("workers")] if with_run_by else []
        writer.writerow(["" if v is None else v for v in line])
    return out.getvalue()


def _summary(rows: list[dict[str, Any]]) -> str:
    def listed(key: str) -> str:
        return ", ".join(sorted({str(row[key]) for row in rows if row.get(key) is not None})) or "none"

    recipes = {row["recipe"] for row in rows if "recipe" in row}
    recipe = f", recipe `{next(iter(recipes))}`" if recipes else ""
    return (
        f"{len(rows)} result rows{recipe}. Tasks: {listed('task')}. Sources: {listed('source')}. "
        f"Targets: {listed('target')}. Seeds: {listed('seed')}."
    )


def _chosen_metrics(
    rows: list[dict[str, Any]],
    metrics: list[str] | None,
    configurations: list[str] | None,
    targets: list[str] | None,
) -> list[str]:
    """The metrics to report: the caller's, in the caller's order, else every metric of the selected cells."""
    if metrics is not None:
        chosen = list(dict.fromkeys(metrics))
    else:
        # only metrics of the selected cells, so a selection never fails on a metric it filtered away
        selected = [
            row
            for row in rows
            if (configurations is None or str(row["configuration"]) in configurations)
            and (targets is None or str(row["target"]) in targets)
        ]
        chosen = metric_names(selected)
    if not chosen:
        raise ReportError("no metrics to report (the rows' 'metrics' dicts are empty and none were requested)")
    return chosen


def _page_tables(
    rows: list[dict[str, Any]], chosen: list[str], configurations: list[str] | None, targets: list[str] | None
) -> list[Table]:
    tables = [t for m in chosen for t in build_tables(rows, m, configurations=configurations, targets=targets)]
    # the page reads task by task, source by source, with the metrics of one pair together
    tables.sort(key=lambda t: (t.task, t.source, chosen.index(t.metric)))
    return tables


def _write_table(directory: Path, table: Table, stem: str) -> list[Path]:
    """The table's own files: Markdown, CSV, LaTeX, then its two plots."""
    heading = f"# {table.task} · source {table.source} · {table.metric}\n\n"
    return [
        atomic_write_text(directory / f"{stem}.md", heading + to_markdown(table)),
        atomic_write_text(directory / f"{stem}.csv", to_csv(table)),
        atomic_write_text(directory / f"{stem}.tex", to_latex(table)),
        heatmap(table, directory / f"{stem}-heatmap.png"),
        bar_plot(table, directory / f"{stem}-bars.png"),
    ]


def _table_section(table: Table, stem: str) -> str:
    """The page's part for one table: the table, its plots, links to its files."""
    what = f"{table.task}, source {table.source}, {table.metric}"
    return (
        f"### {table.metric}\n\n{to_markdown(table)}\n"
        f"![{what}: heatmap of targets by configurations]({stem}-heatmap.png)\n\n"
        f"![{what}: averages per configuration]({stem}-bars.png)\n\n"
        f"Files: [Markdown]({stem}.md) · [CSV]({stem}.csv) · [LaTeX]({stem}.tex)\n"
    )


def _sections(tables: list[Table], stems: list[str]) -> list[str]:
    """Every table's section, under one heading per (task, source)."""
    sections: list[str] = []
    current = None
    for table, stem in zip(tables, stems, strict=True):
        if (table.task, table.source) != current:
            current = (table.task, table.source)
            sections.append(f"## {table.task} · source {table.source}\n")
        sections.append(_table_section(table, stem))
    return sections


def _configuration_section(config_text: str | None) -> str:
    if config_text is None:
        return "## Configuration\n\nNo configuration was given for these results.\n"
    fence = _fence(config_text)
    return f"## Configuration\n\n{fence}yaml\n{config_text}{fence}\n"


def _page(
    title: str,
    rows: list[dict[str, Any]],
    notes: list[str] | None,
    sections: list[str],
    config_text: str | None,
) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    page = [f"# {title}\n", f"Generated {generated} from {_summary(rows)}\n"]
    if notes:
        page.append("## Notes\n\n" + "".join(f"- {note}\n" for note in notes))
    page += sections
    page.append(f"## Results\n\nEvery result row, one line each: [{RESULTS}]({RESULTS})\n")
    page.append(_configuration_section(config_text))
    return "\n".join(page)


def render_report(
    rows: list[dict[str, Any]],
    out_dir: Path,
    *,
    config: dict[str, Any] | str | None = None,
    metrics: list[str] | None = None,
    configurations: list[str] | None = None,
    targets: list[str] | None = None,
    title: str = "Cross-lingual transfer",
    notes: list[str] | None = None,
    extra_sections: list[str] | None = None,
) -> Report:
    """Write the report for ``rows`` into ``out_dir`` (created if needed) and return what was written.

    ``metrics`` defaults to every metric in the rows (accuracy first); ``configurations`` and ``targets`` select
    and order columns and rows of every table; ``extra_sections`` (Markdown) follow the tables. Files from an
    earlier report in ``out_dir`` with other names are left in place.
    """
    check_rows(rows)
    config_text = _config_yaml(config)  # before any write: a bad config leaves the directory untouched
    chosen = _chosen_metrics(rows, metrics, configurations, targets)
    tables = _page_tables(rows, chosen, configurations, targets)
    stems = _stems(tables)

    directory = make_dir(Path(out_dir), adopt=True)
    files = [path for table, stem in zip(tables, stems, strict=True) for path in _write_table(directory, table, stem)]
    files.append(atomic_write_text(directory / RESULTS, results_csv(rows)))
    sections = [*_sections(tables, stems), *(extra_sections or [])]  # after the tables they explain
    page_path = atomic_write_text(directory / PAGE, _page(title, rows, notes, sections, config_text))
    files.append(page_path)
    return Report(directory=directory, page=page_path, files=files, tables=tables)
