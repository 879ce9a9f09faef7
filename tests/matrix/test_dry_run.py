"""``xlt matrix CONFIG --dry-run``: the paper's matrix as a file, planned offline without loading anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from matrix_helpers import world

from xlt.cli import main
from xlt.matrix import load_config
from xlt.matrix.dry_run import plan

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
    assert any("NVIDIA H200" in line for line in lines)  # the device the throughput was measured on


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
