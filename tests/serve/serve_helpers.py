"""A small trained matrix to serve, a server on the loopback interface, and a raw HTTP client for bad requests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "matrix"))

from matrix_helpers import world

from xlt.matrix import load_config, run_matrix
from xlt.serve.app import create_app, running
from xlt.serve.settings import ServeConfig

LANGUAGES = ("en", "de", "sk", "sw")
CONFIGURATIONS = ("zero-shot", "TA", "SLP+TA", "LA+TA", "LA+TA-avg", "LA+TA-ens", "SLP+TA-cyc", "LA+TA-align")
SILENT = lambda _: None  # noqa: E731


def trained_matrix(root: Path, arch: str = "bert", configurations: tuple[str, ...] = CONFIGURATIONS) -> Path:
    """A matrix of a tiny model, trained and evaluated: its output directory."""
    spec = world(root, arch, languages=list(LANGUAGES))
    spec["configurations"] = list(configurations)
    spec["threads"] = 1
    rows = run_matrix(load_config(spec), log=SILENT, report=False)
    assert rows and all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows if r["status"] != "ok"]
    return Path(spec["output_dir"])


@contextmanager
def served(reps: list[str] | Path, **options: Any) -> Iterator[tuple[str, Any]]:
    """A server of ``reps`` on 127.0.0.1 (any free port): its URL and its ``Server``."""
    directories = [str(reps)] if isinstance(reps, Path) else reps
    app = create_app(ServeConfig(reps=directories, **options), log=SILENT)
    with running(app) as url:
        yield url, app.state.server
