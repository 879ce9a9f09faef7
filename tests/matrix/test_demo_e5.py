"""The embedded default end to end on the real e5, the built-in emoji task and corpora (few steps, 2 languages)."""

from __future__ import annotations

import pytest

from xlt import XLTModel
from xlt.demo import DEFAULT_LANGUAGES, demo_config
from xlt.e5 import E5_MODEL_ID
from xlt.errors import XLTError
from xlt.matrix import load_config, run_matrix

pytestmark = [pytest.mark.e5, pytest.mark.slow]


def test_default_languages_follow_the_issue():
    from xlt.languages import Group, get_language

    assert DEFAULT_LANGUAGES[0] == "en" and len(DEFAULT_LANGUAGES) >= 6
    assert sum(get_language(c).group is Group.FOCUS for c in DEFAULT_LANGUAGES) >= 3


def test_languages_must_include_the_source():
    from xlt.demo import _languages

    assert _languages("all")[:2] == ["ar", "de"] and len(_languages("all")) == 16
    with pytest.raises(XLTError, match="must include en"):
        _languages("sk,sw")


def test_demo_matrix_on_e5(e5_dir, tmp_path):
    from xlt.e5 import load_e5

    spec = demo_config(["en", "sk"], tmp_path / "demo", threads=None)
    # The probe and one configuration with a language and a task representation: every stage runs once (the
    # other configurations' machinery is the tiny models' tests' business; here the real model and data are).
    spec["configurations"] = ["zero-shot", "SLP+TA"]
    spec["progress"] = False
    spec["lm_head"].update(cached_segments=64, cached_epochs=1)  # the demo's head, on a few cached states
    for section, steps in (("lm_head", 4), ("language_training", 2), ("task_training", 8)):
        # One dev evaluation per training (evaluation dominates this test's time); checkpoints halfway still.
        spec[section]["train"].update(steps=steps, eval_every=steps, checkpoint_every=steps // 2, warmup_steps=0)
    model = XLTModel(*load_e5(e5_dir), name=E5_MODEL_ID)  # its own copy: the matrix installs hooks
    messages: list[str] = []
    rows = run_matrix(load_config(spec), log=messages.append, model=model)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert all(r["examples"] == 439 for r in rows)  # the parallel CLDR test set
    assert any("LM head: the encoder ships none; training one on 16 corpora" in m for m in messages)
    for row in rows:  # evaluation's throughput against the CPU's measured peak, counted on its middle batch
        used = row["utilisation"]
        assert 20e6 < used["flops_per_token"] < 200e6  # e5-small: about 42.5 MFLOP per token forward
        assert 0 < used["fraction_of_peak"] < 1.5 and used["dtype"] == "fp32" and used["device"].startswith("CPU")
    assert any(m.startswith("evaluated emoji/en SLP+TA on 878 examples: ") and "% of CPU" in m for m in messages)
    page = (tmp_path / "demo" / "report" / "report.md").read_text()
    assert "emoji never seen in training" in page and "| sk |" in page
    probe = next(r for r in rows if r["configuration"] == "zero-shot" and r["target"] == "en")
    assert probe["metrics"]["accuracy"] > 0.2  # the converged probe beats the majority class (16.9%)
