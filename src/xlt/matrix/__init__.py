"""The cross-lingual transfer matrix: configurations, the grid and its resumable store, the runner, reports."""

from xlt.matrix.config import ConfigError, MatrixConfig, load_config
from xlt.matrix.configurations import PAPER_CONFIGURATIONS, Configuration, resolve_configurations
from xlt.matrix.publish import publish, store_rows
from xlt.matrix.report import Report, Table, build_tables, render_report, to_csv, to_latex, to_markdown
from xlt.matrix.runner import Cell, Matrix, grid, run_matrix
from xlt.matrix.store import ResultStore, read_rows

__all__ = [
    "PAPER_CONFIGURATIONS",
    "Cell",
    "ConfigError",
    "Configuration",
    "Matrix",
    "MatrixConfig",
    "Report",
    "ResultStore",
    "Table",
    "build_tables",
    "grid",
    "load_config",
    "publish",
    "read_rows",
    "render_report",
    "resolve_configurations",
    "run_matrix",
    "store_rows",
    "to_csv",
    "to_latex",
    "to_markdown",
]
