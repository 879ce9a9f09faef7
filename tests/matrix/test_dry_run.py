"""``xlt matrix CONFIG --dry-run``: the paper's matrix as a file, planned offline without loading anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from matrix_helpers import world

from xlt.cli import main
from xlt.matrix import load_config
from xlt.matrix.dry_run import count_rows, plan

PAPER = Path(__file__).resolve().parents[2] / "configs" / "paper.yaml"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_the_paper_matrix_dry_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(os.listdir(PAPER.parent))
    main(["matrix", str(PAPER), "--dry-run", "--output_dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert set(os.listdir(PAPER.parent)) == before and not (tmp_path / "out").exists()  # nothing written
    lines = out.splitlines()
    assert "model: bigscience/mt0-base (encoder_decoder)" in lines
    # 16 languages x 2 kinds; 4 tasks x 6 sources x 6 trained configurations (zero-shot trains nothing on mt0)
    assert "runs: 32 language representations (16 languages x bottleneck, prompt)" in lines
    assert "runs: 144 task representations (checkworthiness, ner, nli, qa)" in lines
    assert "cells: 2688" in lines  # 4 tasks x 6 sources x 16 targets x 7 configurations
    assert "download: model bigscience/mt0-base" in lines
    assert "download: corpus sk: wikimedia/wikipedia (20231101.sk), streamed" in lines
    assert any(line.startswith("download: task ner: unimelb-nlp/wikiann") for line in lines)
    assert any(line.startswith("download: task nli: facebook/xnli") for line in lines)
    assert any(line.startswith("download: task qa: rajpurkar/squad") for line in lines)
    assert any(line.startswith("needs: task checkworthiness train files for ar, de, en, es, ru, zh") for line in lines)
    estimate = next(line for line in lines if line.startswith("estimate: "))
    hours = float(estimate.split()[1].replace(",", ""))
    assert 100 < hours < 5000
    assert ", dev evaluation " in estimate and estimate.endswith(")") and ", evaluation " in estimate
    assert any("NVIDIA H200" in line for line in lines)  # the device the throughput was measured on
    # Nothing fetched or written yet: every test and dev set is assumed, and the note says so.
    note = next(line for line in lines if "NVIDIA H200" in line)
    assert "2688 of 2688 cells at 1000 examples" in note and "144 of 144 task runs at 1000 dev examples" in note


def test_a_dry_run_of_local_files_needs_nothing_and_counts_the_encoders_runs(tmp_path):
    spec = world(tmp_path, "bert")
    result = plan(load_config(spec))
    assert result.family == "encoder" and result.downloads == [] and result.needs == []
    assert result.cells == 7 * 4 and len(result.task_runs) == 7  # the zero-shot probe trains on an encoder
    assert len(result.language_runs) == 8


def test_a_missing_test_file_is_named_not_fatal(tmp_path):
    spec = world(tmp_path, "bert")
    (tmp_path / "data" / "test" / "sw.jsonl").unlink()
    result = plan(load_config(spec))
    assert result.needs == ["task toy test files for sw (their cells are reported missing)"]


def _hours(tmp_path: Path) -> tuple[dict[str, float], str]:
    result = plan(load_config(world(tmp_path, "mt5")))
    assert result.cells == 7 * 4 and len(result.task_runs) == 6  # zero-shot trains nothing on mt5
    return result.gpu_hours, result.notes[-1]


def test_evaluation_is_estimated_from_the_test_and_dev_files_that_exist(tmp_path):
    hours, note = _hours(tmp_path)
    assert set(hours) == {"language", "task", "dev evaluation", "evaluation"}
    # 28 cells over test sets of 30 rows; 6 task runs evaluating 20 dev rows twice (steps 4, eval_every 2)
    assert hours["evaluation"] / hours["dev evaluation"] == pytest.approx(28 * 30 / (6 * 2 * 20))
    assert "0 of 28 cells at 1000 examples" in note and "0 of 6 task runs at 1000 dev examples" in note


def test_a_missing_test_file_is_estimated_at_the_assumed_size_and_counted_in_the_note(tmp_path):
    spec = world(tmp_path, "mt5")
    (tmp_path / "data" / "test" / "sw.jsonl").unlink()
    (tmp_path / "data" / "dev.jsonl").unlink()
    result = plan(load_config(spec))
    # sw's 7 cells at 1000 rows, the others at 30; every dev set assumed
    expected = (21 * 30 + 7 * 1000) / (6 * 2 * 1000)
    assert result.gpu_hours["evaluation"] / result.gpu_hours["dev evaluation"] == pytest.approx(expected)
    assert "7 of 28 cells at 1000 examples" in result.notes[-1]
    assert "6 of 6 task runs at 1000 dev examples" in result.notes[-1]


def test_rows_are_counted_from_jsonl_csv_tsv_and_parquet_metadata(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.jsonl").write_text('{"x": 1}\n\n{"x": 2}\n{"x": 3}')
    (tmp_path / "a.csv").write_text("text,label\na,1\nb,0\n\n")
    (tmp_path / "a.tsv").write_text("text\tlabel\na\t1\n")
    pq.write_table(pa.table({"x": list(range(7))}), tmp_path / "a.parquet")
    (tmp_path / "a.json").write_text('{"x": 1}\n')  # JSON lines, as the reader reads .json
    (tmp_path / "a.txt").write_text("a\n")
    names = ("a.jsonl", "a.csv", "a.tsv", "a.parquet", "a.json", "a.txt")
    counts = {name: count_rows(tmp_path / name) for name in names}
    assert counts == {"a.jsonl": 3, "a.csv": 2, "a.tsv": 1, "a.parquet": 7, "a.json": 1, "a.txt": None}
    assert count_rows(tmp_path / "missing.jsonl") is None


def test_dry_run_counts_aligned_runs_and_ensemble_passes(tmp_path):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    spec["configurations"] = ["LA+TA"]
    plain = plan(load_config(spec))
    spec["configurations"] = ["LA+TA", "LA+TA-align", "LA+TA-ens"]
    beyond = plan(load_config(spec))
    assert plain.aligned_runs == [] and "aligned language" not in plain.render()
    assert beyond.aligned_runs == [("de", "bottleneck", "en"), ("sk", "bottleneck", "en")]
    assert "runs: 2 aligned language representations" in beyond.render()
    assert beyond.task_runs == plain.task_runs  # both beyond-paper configurations test LA+TA's
    if plain.gpu_hours:
        # LA+TA and -align evaluate once each, -ens once per member (2): 4 passes against 1
        assert beyond.gpu_hours["evaluation"] == pytest.approx(4 * plain.gpu_hours["evaluation"])
        assert beyond.gpu_hours["language"] > plain.gpu_hours["language"]
