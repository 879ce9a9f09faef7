"""The language-modelling table of a matrix: every language representation's held-out loss on every
language's text against the model alone, its margin, the flags, and the report's section."""

from __future__ import annotations

import json

import pytest
from matrix_helpers import world

from xlt.matrix import load_config, run_matrix
from xlt.matrix.language_modelling import LM_FILE, language_modelling_section
from xlt.training.lm_eval import ALONE, LossTable, flagged, held_out


def _table() -> LossTable:
    return LossTable(
        ["en", "sk"],
        {"en/prompt": "en", "sk/prompt": "sk"},
        {
            ALONE: {"en": 5.0, "sk": 6.0},
            "en/prompt": {"en": 4.5, "sk": 5.9},  # helps its own language most
            "sk/prompt": {"en": 4.0, "sk": 6.2},  # worse on its own language, better on English
        },
        {"en": 3, "sk": 3},
    )


def test_margins_flags_and_own_language():
    table = _table()
    assert table.margin("en/prompt") == pytest.approx(0.5) and table.own_best("en/prompt")
    assert table.margin("sk/prompt") == pytest.approx(-0.2) and not table.own_best("sk/prompt")
    assert flagged(table) == ["sk/prompt raises sk's held-out loss from 6.000 to 6.200"]
    assert LossTable.from_dict(json.loads(json.dumps(table.to_dict()))) == table


class _Source:
    def __init__(self, n: int) -> None:
        self.n = n

    def validation(self, limit: int) -> list[list[int]]:
        return [[i] for i in range(min(limit, self.n))]


def test_held_out_segments_skip_those_training_selected_on():
    assert held_out(_Source(10), skip=4, count=3) == [[4], [5], [6]]
    assert held_out(_Source(5), skip=4, count=3) == [[4]]
    assert held_out(_Source(3), skip=4, count=2) == [[0], [1]]  # a split no longer than skip: its first ones


def test_a_matrix_measures_and_reports_its_language_representations(tmp_path):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    spec["configurations"] = ["TA", "LA+TA", "SLP+TA"]
    lines: list[str] = []
    run_matrix(load_config(spec), log=lines.append)
    data = json.loads((tmp_path / "out" / LM_FILE).read_text())
    table = LossTable.from_dict(data["table"])
    reps = {f"{lang}/{kind}" for lang in ("en", "de", "sk") for kind in ("bottleneck", "prompt")}
    assert set(table.reps) == reps and set(table.losses) == reps | {ALONE}
    assert all(set(row) == {"en", "de", "sk"} for row in table.losses.values())
    assert all(v > 0 for row in table.losses.values() for v in row.values())
    # Paired: the same held-out masks under every representation, so the losses differ only by the rep.
    assert len({round(row["en"], 6) for row in table.losses.values()}) > 1
    assert set(table.reused) <= set(table.languages)
    page = (tmp_path / "out" / "report" / "report.md").read_text()
    assert ("measured again" in page) == bool(table.reused)
    assert "## Language modelling" in page and "| model alone |" in page and "| sk/prompt |" in page
    assert language_modelling_section(tmp_path / "out") in page
    # Kept while nothing it measured changes.
    stamp = (tmp_path / "out" / LM_FILE).stat().st_mtime_ns
    spec["seeds"] = [42, 43]
    run_matrix(load_config(spec), log=lines.append)
    assert (tmp_path / "out" / LM_FILE).stat().st_mtime_ns == stamp


def test_no_section_without_a_measurement(tmp_path):
    assert language_modelling_section(tmp_path) is None
    (tmp_path / LM_FILE).write_text("not json")
    assert language_modelling_section(tmp_path) is None
