"""Transfer-matrix tables: result rows folded into one targets × configurations table per (task, source, metric).

Cells are the mean and the sample standard deviation (n - 1) over seeds. Averages over a set of targets are only
given for configurations evaluated on every target of that set, so an average never compares unlike sets.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xlt.errors import XLTError
from xlt.languages import Group, get_language
from xlt.matrix.configurations import BUILTIN_NAMES
from xlt.paths import short

# Metric names where a smaller value wins (everything else: larger wins).
LOWER_IS_BETTER: frozenset[str] = frozenset({"loss", "perplexity", "ppl", "error", "error_rate", "wer", "cer"})

GROUP_ORDER: tuple[Group, ...] = (Group.SOURCE, Group.FOCUS, Group.OTHER)
ALL_TARGETS = "all targets"
MISSING = "–"  # en dash: a cell that was not evaluated
_REQUIRED = ("task", "source", "target", "configuration", "metrics")

Cell = tuple[str, str]  # (target, configuration)


class ReportError(XLTError):
    """Result rows that cannot be turned into a report."""


@dataclass
class Table:
    """One (task, source, metric) comparison: targets as rows, configurations as columns.

    ``std`` is the sample standard deviation over seeds (n - 1 denominator), 0.0 for a single seed. Missing cells
    are absent from ``mean``/``std``/``seeds``. ``averages`` holds one ``(label, {configuration: value})`` per
    target set; a configuration is absent from a set's dict when it lacks any target of that set.
    ``average_targets`` maps each average label to the targets it covers.
    """

    task: str
    source: str
    metric: str
    targets: list[str]
    configurations: list[str]
    mean: dict[Cell, float]
    std: dict[Cell, float]
    seeds: dict[Cell, int]
    averages: list[tuple[str, dict[str, float]]]
    average_targets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        return self.metric.lower() not in LOWER_IS_BETTER

    @property
    def percent(self) -> bool:
        """Fractions (every mean in [0, 1]) are shown as percentages."""
        values = list(self.mean.values())
        return bool(values) and all(0.0 <= v <= 1.0 for v in values)

    @property
    def multi_seed(self) -> bool:
        return any(n > 1 for n in self.seeds.values())

    @property
    def unit(self) -> str:
        return f"{self.metric} (%)" if self.percent else self.metric

    def scale(self, value: float) -> float:
        return value * 100.0 if self.percent else value

    def best(self, values: dict[str, float]) -> set[str]:
        """The configurations holding the best value (all of them on a tie)."""
        if not values:
            return set()
        top = max(values.values()) if self.higher_is_better else min(values.values())
        return {c for c, v in values.items() if math.isclose(v, top, rel_tol=0.0, abs_tol=1e-12)}

    def row_values(self, target: str) -> dict[str, float]:
        return {c: self.mean[(target, c)] for c in self.configurations if (target, c) in self.mean}

    def format_value(self, value: float, std: float | None = None) -> str:
        """``61.2 ± 1.3`` for fractions (percent, one decimal); the ± part only when ``std`` is given."""
        digits = 1 if self.percent else 2
        text = f"{self.scale(value):.{digits}f}"
        if std is not None:
            text += f" ± {self.scale(std):.{digits}f}"
        return text

    def format_cell(self, target: str, configuration: str) -> str | None:
        """The cell's text, or None when it was not evaluated."""
        key = (target, configuration)
        if key not in self.mean:
            return None
        return self.format_value(self.mean[key], self.std[key] if self.seeds[key] > 1 else None)

    def caption(self) -> str:
        spread = "mean ± sample std over seeds" if self.multi_seed else "one seed"
        direction = "higher" if self.higher_is_better else "lower"
        return (
            f"{self.task}, source {self.source}: {self.unit}, {spread}; best per row in bold ({direction} is "
            f"better); {MISSING} not evaluated; averages only over configurations evaluated on every target of the set"
        )


def language_group(code: str) -> Group:
    """The registry's group for ``code``; codes it does not know count as ``other``."""
    try:
        return get_language(code).group
    except XLTError:
        return Group.OTHER


def order_configurations(names: Iterable[str]) -> list[str]:
    """The paper's column order, then the built-in configurations beyond it; others follow alphabetically."""
    names = set(names)
    known = [c for c in BUILTIN_NAMES if c in names]
    return known + sorted(names - set(BUILTIN_NAMES))


def order_targets(codes: Iterable[str]) -> list[str]:
    return sorted(set(codes), key=lambda code: (GROUP_ORDER.index(language_group(code)), code))


def order_metrics(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=lambda name: (name != "accuracy", name))


def check_rows(rows: list[dict[str, Any]]) -> None:
    """Refuse empty input, malformed rows, and rows from more than one recipe."""
    if not rows:
        raise ReportError("no results to report (the row list is empty; run the matrix or check the store's path)")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ReportError(f"result row {i} is a {type(row).__name__}, not a dict; pass the store's rows as dicts")
        missing = [key for key in _REQUIRED if key not in row]
        if missing:
            raise ReportError(f"result row {i} lacks {', '.join(missing)}; every row needs {', '.join(_REQUIRED)}")
        if not isinstance(row["metrics"], dict):
            got = short(row["metrics"])
            raise ReportError(f"result row {i}: 'metrics' must be a dict of name -> number, got {got}")
    recipes = {row["recipe"] for row in rows if "recipe" in row}
    if len(recipes) > 1:
        raise ReportError(
            f"the rows come from {len(recipes)} different recipes and must not be mixed in one report; "
            "filter the rows by 'recipe' or render each recipe into its own output directory"
        )


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    """Every metric name in the rows, accuracy first, then alphabetically."""
    return order_metrics(name for row in rows for name in row["metrics"])


def _metric_value(row: dict[str, Any], metric: str, index: int) -> float | None:
    value = row["metrics"].get(metric)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReportError(f"result row {index}: metric '{metric}' is {value!r}, not a number; fix the store's row")
    # a NaN is a failed evaluation: it leaves the cell's seed count short rather than poisoning the mean
    return None if math.isnan(value) else float(value)


def _average(targets: list[str], configurations: list[str], mean: dict[Cell, float]) -> dict[str, float]:
    return {
        c: statistics.fmean(mean[(t, c)] for t in targets)
        for c in configurations
        if targets and all((t, c) in mean for t in targets)
    }


SeedValues = dict[Cell, dict[Any, float]]  # (target, configuration) -> seed -> value


def _seed_values(
    rows: list[dict[str, Any]], metric: str, configurations: list[str] | None, targets: list[str] | None
) -> dict[tuple[str, str], SeedValues]:
    """The selected rows' values of ``metric`` by (task, source), then by cell and seed; one row per seed."""
    values: dict[tuple[str, str], SeedValues] = {}
    for i, row in enumerate(rows):
        target, configuration = str(row["target"]), str(row["configuration"])
        if configurations is not None and configuration not in configurations:
            continue
        if targets is not None and target not in targets:
            continue
        value = _metric_value(row, metric, i)
        if value is None:
            continue
        seeds = values.setdefault((str(row["task"]), str(row["source"])), {}).setdefault((target, configuration), {})
        seed = row.get("seed")
        if seed in seeds:
            raise ReportError(
                f"two rows for task {row['task']}, source {row['source']}, target {target}, configuration "
                f"{configuration}, seed {seed}; keep one row per seed (deduplicate the store)"
            )
        seeds[seed] = value
    return values


def _target_sets(covered: list[str]) -> list[tuple[str, list[str]]]:
    """The sets averages are taken over: every covered target, then each language group that has members."""
    sets: list[tuple[str, list[str]]] = [(f"{ALL_TARGETS} ({len(covered)})", covered)]
    for group in GROUP_ORDER:
        members = [t for t in covered if language_group(t) is group]
        if members:
            sets.append((f"{group.value} languages ({len(members)})", members))
    return sets


def _table(
    task: str,
    source: str,
    metric: str,
    cells: SeedValues,
    configurations: list[str] | None,
    targets: list[str] | None,
) -> Table:
    """One (task, source) table: each cell's mean, std and seed count, and the averages over its target sets."""
    evaluated = {t for t, _ in cells}
    row_order = list(targets) if targets is not None else order_targets(evaluated)
    columns = list(configurations) if configurations is not None else order_configurations(c for _, c in cells)
    mean = {key: statistics.fmean(v.values()) for key, v in cells.items()}
    std = {key: statistics.stdev(v.values()) if len(v) > 1 else 0.0 for key, v in cells.items()}
    n_seeds = {key: len(v) for key, v in cells.items()}
    sets = _target_sets([t for t in row_order if t in evaluated])
    return Table(
        task=task,
        source=source,
        metric=metric,
        targets=row_order,
        configurations=columns,
        mean=mean,
        std=std,
        seeds=n_seeds,
        averages=[(label, _average(members, columns, mean)) for label, members in sets],
        average_targets=dict(sets),
    )


def build_tables(
    rows: list[dict[str, Any]],
    metric: str = "accuracy",
    configurations: list[str] | None = None,
    targets: list[str] | None = None,
) -> list[Table]:
    """One table per (task, source) for ``metric``, sorted by task then source.

    ``configurations`` and ``targets`` select and order the columns and rows; requested ones without results
    still appear (as ``–``) so the gap is visible. Averages cover the targets with at least one result.
    """
    check_rows(rows)
    values = _seed_values(rows, metric, configurations, targets)
    if not values:
        found = ", ".join(metric_names(rows)) or "none"
        raise ReportError(
            f"no results for metric '{metric}' with the chosen configurations and targets (metrics found: {found}); "
            "pick another metric or widen the selection"
        )
    return [
        _table(task, source, metric, cells, configurations, targets) for (task, source), cells in sorted(values.items())
    ]


# ---- renderers ---------------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    # characters that would end a cell or start emphasis inside a Markdown table
    return "".join("\\" + ch if ch in "\\|*_`" else ch for ch in text)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def to_markdown(table: Table) -> str:
    """A caption line and a GitHub-flavoured Markdown table (targets, then the average rows in italics)."""
    header = ["target", *(_md_escape(c) for c in table.configurations)]
    rule = _md_row(["---", *["---:"] * len(table.configurations)])
    lines = [f"*{_md_escape(table.caption())}*", "", _md_row(header), rule]
    for target in table.targets:
        best = table.best(table.row_values(target))
        cells = []
        for c in table.configurations:
            text = table.format_cell(target, c)
            cells.append(MISSING if text is None else f"**{text}**" if c in best else text)
        lines.append(_md_row([_md_escape(target), *cells]))
    for label, values in table.averages:
        best = table.best(values)
        cells = []
        for c in table.configurations:
            if c not in values:
                cells.append(MISSING)
                continue
            text = table.format_value(values[c])
            cells.append(f"**{text}**" if c in best else text)
        lines.append(_md_row([f"*{_md_escape(label)}*", *cells]))
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "task",
    "source",
    "metric",
    "kind",
    "target",
    "configuration",
    "mean",
    "std",
    "n_seeds",
    "n_targets",
    "best",
)


def _number(value: float) -> str:
    return format(value, ".12g")


def to_csv(table: Table) -> str:
    """One line per target × configuration (missing cells with empty mean) then one per average × configuration.

    Values are raw (fractions stay fractions). ``kind`` is ``cell`` or ``average``; ``best`` is 1 for the best
    configuration of its row. Average lines have ``target`` set to the average's label and ``n_targets`` filled.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    head = [table.task, table.source, table.metric]
    for target in table.targets:
        best = table.best(table.row_values(target))
        for c in table.configurations:
            key = (target, c)
            if key in table.mean:
                writer.writerow(
                    [
                        *head,
                        "cell",
                        target,
                        c,
                        _number(table.mean[key]),
                        _number(table.std[key]),
                        table.seeds[key],
                        "",
                        int(c in best),
                    ]
                )
            else:
                writer.writerow([*head, "cell", target, c, "", "", 0, "", 0])
    for label, values in table.averages:
        best = table.best(values)
        n_targets = len(table.average_targets.get(label, []))
        for c in table.configurations:
            mean = _number(values[c]) if c in values else ""
            writer.writerow([*head, "average", label, c, mean, "", "", n_targets, int(c in best)])
    return out.getvalue()


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def _latex_value(text: str) -> str:
    return text.replace(" ± ", r" $\pm$ ")


def to_latex(table: Table) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); best per row in ``\\textbf``, missing as ``--``."""
    comment = " ".join(table.caption().split()).replace("%", "percent")
    lines = [
        f"% {comment}",
        r"\begin{tabular}{l" + "r" * len(table.configurations) + "}",
        r"\toprule",
        " & ".join(["Target", *(latex_escape(c) for c in table.configurations)]) + r" \\",
        r"\midrule",
    ]
    for target in table.targets:
        best = table.best(table.row_values(target))
        cells = []
        for c in table.configurations:
            text = table.format_cell(target, c)
            cell = "--" if text is None else _latex_value(text)
            cells.append(rf"\textbf{{{cell}}}" if c in best else cell)
        lines.append(" & ".join([latex_escape(target), *cells]) + r" \\")
    if table.averages:
        lines.append(r"\midrule")
    for label, values in table.averages:
        best = table.best(values)
        cells = []
        for c in table.configurations:
            cell = table.format_value(values[c]) if c in values else "--"
            cells.append(rf"\textbf{{{cell}}}" if c in best else cell)
        lines.append(" & ".join([rf"\textit{{{latex_escape(label)}}}", *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
