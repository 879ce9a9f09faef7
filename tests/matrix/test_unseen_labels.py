"""A test label the task representation was never trained on is scored wrong: each cell says so, and so does
the report."""

from __future__ import annotations

import json

from matrix_helpers import rows, world

from xlt.matrix.config import load_config
from xlt.matrix.runner import run_matrix


def test_a_test_label_never_trained_on_is_reported_per_cell(tmp_path):
    spec = world(tmp_path, languages=["en", "de"])
    spec["configurations"] = ["zero-shot"]
    test_de = tmp_path / "data" / "test" / "de.jsonl"
    lines = test_de.read_text().splitlines()
    lines[:3] = [json.dumps({"text": "w11 w12 w13", "label": "w9"})] * 3  # a label the train file never has
    test_de.write_text("\n".join(lines) + "\n")
    messages: list[str] = []
    run_matrix(load_config(spec), log=messages.append)
    by_target = {r["target"]: r for r in rows(tmp_path / "out")}
    assert by_target["de"]["unseen_labels"] == {"count": 3, "labels": ["w9"]}
    assert by_target["en"]["unseen_labels"] == {"count": 0, "labels": []}
    assert any("de zero-shot: 3 example(s) have label(s) ['w9']" in m for m in messages)
    page = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "3 of 30 test examples carry labels ['w9'] the task representation was never trained on" in page
