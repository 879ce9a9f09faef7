"""Cycled configurations in a matrix: named like the paper's, trained with every target's language
representation, tested like their paper counterpart; refused where they cannot apply."""

from __future__ import annotations

import json

import pytest
from matrix_helpers import world

from xlt import XLTError
from xlt.matrix import load_config, run_matrix
from xlt.matrix.configurations import CYCLED_CONFIGURATIONS, PAPER_NAMES, Configuration, resolve_configurations


def test_each_paper_configuration_with_a_language_has_a_cycled_twin():
    names = [c.name for c in CYCLED_CONFIGURATIONS]
    assert names == ["LA+TA-cyc", "LA+TP-cyc", "SLP+TA-cyc", "SLP+TP-cyc"]
    twin = resolve_configurations(["SLP+TA-cyc"], {})[0]
    assert (twin.language, twin.task, twin.cycle, twin.slug) == ("prompt", "bottleneck", True, "slp-ta-cyc")
    assert twin.plan("sk", "t") == resolve_configurations(["SLP+TA"], {})[0].plan("sk", "t")  # tested alike
    assert set(PAPER_NAMES).isdisjoint(names)


def test_custom_cycled_configurations_and_refusals():
    conf = resolve_configurations(["mine"], {"mine": {"language": "lora", "task": "prompt", "cycle": True}})[0]
    assert conf == Configuration("mine", "lora", "prompt", cycle=True)
    with pytest.raises(XLTError, match="cycle: true needs a language kind"):
        resolve_configurations(["x"], {"x": {"task": "prompt", "cycle": True}})
    with pytest.raises(XLTError, match="cycle:, compose:, align: and ensemble: true\\|false"):
        resolve_configurations(["x"], {"x": {"language": "prompt", "task": "prompt", "cycle": "yes"}})
    with pytest.raises(XLTError, match="built-in configuration"):
        resolve_configurations(["LA+TA-cyc"], {"LA+TA-cyc": {"task": "prompt"}})


def test_a_cycled_configuration_runs_in_a_matrix(tmp_path):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    spec["configurations"] = ["SLP+TA", "SLP+TA-cyc"]
    result = run_matrix(load_config(spec), log=lambda _: None)
    assert sorted((r["configuration"], r["target"]) for r in result if r["status"] == "ok") == sorted(
        (c, t) for c in ("SLP+TA", "SLP+TA-cyc") for t in ("en", "de", "sk")
    )
    task_runs = [d for d in sorted((tmp_path / "out" / "reps" / "task").iterdir()) if (d / "run.json").is_file()]
    records = {d.name: json.loads((d / "run.json").read_text())["config"] for d in task_runs}
    (cycled_dir,) = [name for name in records if name.startswith("toy-en-slp-ta-cyc-seed42-")]
    cycled = records[cycled_dir]
    assert cycled["run"]["cycle_language_reps"] == ["en/prompt", "de/prompt", "sk/prompt"]
    assert "cycle_language_reps" not in records["toy-en-slp-ta-seed42"]["run"]
    assert {r["run"]["length_buckets"] for r in records.values()} == {8}  # the matrix's default reaches each run
    accuracy = {(r["configuration"], r["target"]): r["metrics"]["accuracy"] for r in result}
    assert all(0.0 <= v <= 1.0 for v in accuracy.values())


def test_a_wider_grid_recomputes_cycled_cells_instead_of_refusing_them(tmp_path):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    spec["targets"], spec["configurations"] = ["en", "de"], ["TA", "SLP+TA-cyc"]
    lines: list[str] = []
    first = run_matrix(load_config(spec), log=lines.append)
    assert all(r["status"] == "ok" for r in first) and len(first) == 4
    spec["targets"] = ["en", "de", "sk"]
    lines.clear()
    second = run_matrix(load_config(spec), log=lines.append)
    assert all(r["status"] == "ok" for r in second) and len(second) == 6
    assert any("2 cycled, composed or ensemble cell(s) to recompute" in line for line in lines)
    runs = [d.name for d in (tmp_path / "out" / "reps" / "task").iterdir() if d.name.startswith("toy-en-slp-ta-cyc")]
    assert len(runs) == 2  # one per cycled set; the first is never overwritten or refused
    ta = {r["target"]: r for r in first if r["configuration"] == "TA"}
    assert all(
        r["metrics"] == ta[r["target"]]["metrics"] for r in second if r["configuration"] == "TA" and r["target"] in ta
    )
