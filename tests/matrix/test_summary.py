"""The few lines that say what a matrix shows: set means over seeds, paired margins, the verdict."""

from __future__ import annotations

import pytest

from xlt.matrix.summary import paired_margin, set_scores, summary_lines


def _rows(values: dict[tuple[str, str, int], float]) -> list[dict]:
    return [
        {"target": t, "configuration": c, "seed": s, "status": "ok", "metrics": {"accuracy": v}}
        for (c, t, s), v in values.items()
    ]


ROWS = _rows(
    {
        **{("TA", t, s): 0.5 + 0.01 * s for t in ("sk", "sw") for s in (1, 2, 3)},
        **{("LA+TA", t, s): 0.6 + 0.01 * s for t in ("sk", "sw") for s in (1, 2, 3)},
        **{("zero-shot", t, s): 0.55 for t in ("sk", "sw") for s in (1, 2, 3)},
        ("X", "sk", 1): 0.9,  # no sw: not scored on the set
    }
)


def test_set_means_spread_over_seeds_and_paired_margins():
    scores = set_scores(ROWS, "accuracy", ["sk", "sw"])
    assert set(scores) == {"TA", "LA+TA", "zero-shot"}
    assert scores["TA"].mean == pytest.approx(0.52) and scores["TA"].std == pytest.approx(0.01)
    mean, std, n = paired_margin(scores["LA+TA"], scores["TA"])
    assert (mean, std, n) == (pytest.approx(0.1), pytest.approx(0.0, abs=1e-12), 3)


def test_summary_names_the_winner_and_its_verdict():
    lines = summary_lines(ROWS, "accuracy", ["sk", "sw"], "focus", ["TA", "zero-shot"], {"LA+TA"})
    assert lines[0].startswith(
        "focus (sk, sw), accuracy, 3 seed(s): LA+TA 62.0 ± 1.0, zero-shot 55.0 ± 0.0, TA 52.0 ± 1.0"
    )
    assert "LA+TA - TA: +10.0 points (paired over 3 seeds, std 0.0); more than the seeds' std (1.0)" in lines[1]
    assert "LA+TA - zero-shot: +7.0 points" in lines[2] and len(lines) == 3
    assert summary_lines([], "accuracy", ["sk"], "focus", ["TA"], set()) == [
        "focus: no configuration was evaluated on all of sk"
    ]


def test_one_seed_says_there_is_no_spread():
    one = [r for r in ROWS if r["seed"] == 1]
    lines = summary_lines(one, "accuracy", ["sk", "sw"], "focus", ["TA"], {"LA+TA"})
    assert lines[1] == "  LA+TA - TA: +10.0 points (one seed: no spread to compare it with; run more seeds)"
