"""PNG plots of a transfer-matrix table: a targets × configurations heatmap and grouped bars of the averages.

Figures are built on ``matplotlib.figure.Figure`` directly, so no pyplot state or GUI backend is involved
and plotting works headless and in threads.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from xlt.formats.atomic import atomic_write, make_dir
from xlt.matrix.tables import MISSING, Table

DPI = 120
MISSING_COLOUR = "#dddddd"


def _save(figure: Figure, path: Path) -> Path:
    """Write the PNG beside ``path`` under a temporary name, then rename: readers never see half a file."""
    path = Path(path)
    make_dir(path.parent)
    # the temporary name has no .png suffix, so the format must be named
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))


def _title(table: Table) -> str:
    return f"{table.task} · source {table.source} · {table.unit}"


def _colormap(table: Table) -> mpl.colors.Colormap:
    # the bright end of viridis marks the better value whichever direction the metric runs
    name = "viridis" if table.higher_is_better else "viridis_r"
    return mpl.colormaps[name].with_extremes(bad=MISSING_COLOUR)


def _text_colour(rgba: tuple[float, float, float, float]) -> str:
    luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
    return "black" if luminance > 0.5 else "white"


def heatmap(table: Table, path: Path) -> Path:
    """Targets × configurations, each cell annotated with its mean (± std for several seeds), best per row bold."""
    n_rows, n_cols = len(table.targets), len(table.configurations)
    grid = np.full((max(n_rows, 1), max(n_cols, 1)), np.nan)
    for i, target in enumerate(table.targets):
        for j, c in enumerate(table.configurations):
            if (target, c) in table.mean:
                grid[i, j] = table.scale(table.mean[(target, c)])

    figure = Figure(
        figsize=(max(4.5, 2.2 + 1.05 * n_cols), max(3.0, 1.4 + 0.45 * n_rows)), dpi=DPI, layout="constrained"
    )
    axes = figure.add_subplot()
    cmap = _colormap(table)
    finite = grid[np.isfinite(grid)]
    norm = Normalize(float(finite.min()), float(finite.max())) if finite.size else Normalize(0.0, 1.0)
    image = axes.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")

    for i, target in enumerate(table.targets):
        best = table.best(table.row_values(target))
        for j, c in enumerate(table.configurations):
            text = table.format_cell(target, c)
            if text is None:
                axes.text(j, i, MISSING, ha="center", va="center", fontsize=12, color="#555555")
                continue
            axes.text(
                j,
                i,
                text.replace(" ± ", "\n± "),
                ha="center",
                va="center",
                fontsize=8,
                color=_text_colour(cmap(norm(grid[i, j]))),
                fontweight="bold" if c in best else "normal",
            )

    axes.set_xticks(range(n_cols), table.configurations, rotation=30, ha="right")
    axes.set_yticks(range(n_rows), table.targets)
    axes.set_xlabel("configuration")
    axes.set_ylabel("target language")
    axes.set_title(_title(table))
    # white gaps between cells keep neighbouring values apart
    axes.set_xticks(np.arange(-0.5, n_cols, 1.0), minor=True)
    axes.set_yticks(np.arange(-0.5, n_rows, 1.0), minor=True)
    axes.grid(which="minor", color="white", linewidth=1.5)
    axes.tick_params(which="minor", length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    figure.colorbar(image, ax=axes, label=table.unit, shrink=0.9)
    return _save(figure, path)


def bar_plot(table: Table, path: Path) -> Path:
    """One group of bars per average (all targets, then per language group), one bar per configuration.

    Error bars are the mean over the set's targets of the per-cell std over seeds; none for single-seed tables.
    An average left out by the like-with-like rule is drawn as ``–`` instead of a bar.
    """
    sets = table.averages
    n_sets, n_cols = len(sets), max(len(table.configurations), 1)
    width = 0.8 / n_cols
    figure = Figure(figsize=(max(5.5, 2.5 + 0.28 * n_cols * n_sets + 0.4 * n_sets), 4.2), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    colours = mpl.colormaps["viridis"](np.linspace(0.05, 0.9, n_cols))

    tops: list[float] = [0.0]
    for j, c in enumerate(table.configurations):
        xs, heights, errors, labels = [], [], [], []
        for k, (label, values) in enumerate(sets):
            x = k + (j - (n_cols - 1) / 2) * width
            if c not in values:
                axes.text(x, 0, MISSING, ha="center", va="bottom", fontsize=12, color="#555555")
                continue
            members = table.average_targets.get(label, [])
            xs.append(x)
            heights.append(table.scale(values[c]))
            labels.append(table.format_value(values[c]))
            spread = statistics.fmean(table.std[(t, c)] for t in members) if members else 0.0
            errors.append(table.scale(spread))
        tops += [h + e for h, e in zip(heights, errors, strict=True)]
        axes.bar(
            xs,
            heights,
            width * 0.95,
            label=c,
            color=colours[j],
            yerr=errors if table.multi_seed else None,
            capsize=2 if table.multi_seed else 0,
            error_kw={"elinewidth": 0.8, "ecolor": "#333333"},
        )
        for x, h, e, text in zip(xs, heights, errors, labels, strict=True):
            axes.text(
                x, h + (e if table.multi_seed else 0), f" {text}", ha="center", va="bottom", fontsize=6.5, rotation=90
            )

    axes.set_xticks(range(n_sets), [label for label, _ in sets])
    axes.set_ylabel(table.unit)
    axes.set_title(_title(table) + (" · error bars: mean std over seeds" if table.multi_seed else ""))
    if all(v >= 0 for _, values in sets for v in values.values()):
        axes.set_ylim(0, max(tops) * 1.18 or 1.0)
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.legend(title="configuration", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(figure, path)
