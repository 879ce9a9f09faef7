"""``xlt report DIR --worst N``: each cell's lowest-scoring kept outputs, read from a hand-written ``outputs/``
directory laid out as evaluation keeps it (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xlt.cli import main
from xlt.errors import XLTError
from xlt.matrix.worst import worst_examples

pytestmark = pytest.mark.no_model  # no model, no transformers: run once, under transformers 5.x


def _example(id_: str, score: float | None, **extra) -> dict:
    return {"id": id_, "input": f"input {id_}", "reference": "ref", "generation": None, "prediction": "p",
            "score": score, **extra}  # fmt: skip


def _cell(root: Path, task: str, source: str, run: str, target: str, rows: list[dict | str]) -> Path:
    path = root / "outputs" / task / source / run / f"{target}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    rows = [_example("c", 0.5), _example("b", 0.0), _example("a", 0.0), _example("d", 1.0)]
    _cell(tmp_path, "qa", "en", "slp-tp-seed3", "sw", rows)
    _cell(tmp_path, "qa", "en", "slp-tp-seed3", "en", [_example("x", 0.25)])
    _cell(tmp_path, "qa", "en", "la-ta-seed3", "sw", [_example("y", 0.75)])
    _cell(tmp_path, "qa", "en", "ta-seed3", "sw", [_example("t", 0.1)])
    _cell(tmp_path, "qa", "en", "my-conf-seed1", "sw", [_example("m", 0.2)])
    _cell(tmp_path, "ner", "en", "slp-tp-seed3", "sw", [_example("n", 0.3)])
    return tmp_path


def _headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("== ")]


def test_lowest_score_first_ties_by_id(results):
    text = worst_examples(results, 3, task="qa", target="sw", configuration="SLP+TP")
    assert _headers(text) == ["== qa en->sw slp-tp-seed3 (4 examples)"]
    shown = [line.split("input: ")[1] for line in text.splitlines() if line.strip().startswith("score ")]
    assert shown == ["input a", "input b", "input c"]  # 0.0 (a before b), 0.0, 0.5; d (1.0) left out
    assert "score 0.000" in text and "score 0.500" in text


def test_filters_by_task_target_and_configuration(results):
    assert _headers(worst_examples(results, 1, task="ner")) == ["== ner en->sw slp-tp-seed3 (1 examples)"]
    assert _headers(worst_examples(results, 1, target="en")) == ["== qa en->en slp-tp-seed3 (1 examples)"]
    # TA is its own configuration, not the end of LA+TA
    assert _headers(worst_examples(results, 1, configuration="TA")) == ["== qa en->sw ta-seed3 (1 examples)"]
    assert len(_headers(worst_examples(results, 1))) == 6


def test_a_custom_configuration_name_matches_its_slug(results):
    assert _headers(worst_examples(results, 1, configuration="my_conf")) == ["== qa en->sw my-conf-seed1 (1 examples)"]
    assert _headers(worst_examples(results, 1, configuration="My Conf")) == ["== qa en->sw my-conf-seed1 (1 examples)"]


def test_no_matching_cell_is_one_line(results):
    with pytest.raises(XLTError, match="no cell matches --task/--target/--configuration"):
        worst_examples(results, 1, task="nli")


def test_a_null_score_names_the_file_and_line(tmp_path):
    path = _cell(tmp_path, "qa", "en", "ta-seed1", "sw", [_example("a", 0.5), _example("b", None)])
    with pytest.raises(XLTError) as error:
        worst_examples(tmp_path, 1)
    assert str(error.value) == f"{path}:2 is not scored (score null); evaluate the cell again"


def test_a_truncated_line_names_the_file_and_line(tmp_path):
    cut = json.dumps(_example("b", 0.5))[:20]
    path = _cell(tmp_path, "qa", "en", "ta-seed1", "sw", [_example("a", 0.5), "", cut])
    with pytest.raises(XLTError) as error:
        worst_examples(tmp_path, 1)
    assert str(error.value) == f"{path}:3 is not a JSON line; evaluate the cell again"
    assert "\n" not in str(error.value)


def test_no_outputs_directory(tmp_path, capsys):
    with pytest.raises(XLTError, match=r"holds no kept outputs \(outputs/\); evaluate a matrix there first"):
        worst_examples(tmp_path, 1)
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path), "--worst", "2"])
    assert "holds no kept outputs" in capsys.readouterr().err


def test_a_count_below_one_is_refused(results):
    with pytest.raises(XLTError, match=r"--worst 0: give 1 or more examples per cell"):
        worst_examples(results, 0)
