"""Languages without a corpus: composed language representations (``XLTModel.compose``) and the ``-avg``
configurations that test a target with its own representation withheld."""

from __future__ import annotations

import pytest
import torch
from matrix_helpers import world
from training_helpers import model as tiny_model

from xlt import PromptConfig, XLTError
from xlt.matrix import load_config, run_matrix
from xlt.matrix.composition import composition_weights
from xlt.matrix.configurations import COMPOSED_CONFIGURATIONS, Configuration, resolve_configurations
from xlt.reps.bottleneck import BottleneckConfig


def test_compose_averages_the_weights_exactly():
    model = tiny_model("bert")
    a = model.add_language("de", PromptConfig(num_virtual_tokens=3, init="vocab", seed=1))
    b = model.add_language("sk", PromptConfig(num_virtual_tokens=3, init="vocab", seed=2))
    rep = model.compose("cs/prompt", {"de/prompt": 3.0, "sk/prompt": 1.0}, language="cs")
    assert rep.info.language == "cs" and rep.kind == "prompt"
    for key, value in rep.state_dict().items():
        torch.testing.assert_close(value, 0.75 * a.state_dict()[key] + 0.25 * b.state_dict()[key])
    assert not any(p.requires_grad for p in rep.parameters())


def test_compose_refuses_what_cannot_be_averaged():
    model = tiny_model("bert")
    model.add_language("de", PromptConfig(num_virtual_tokens=3, init="vocab"))
    model.add_language("sk", PromptConfig(num_virtual_tokens=4, init="vocab"))
    model.add_language("sw", BottleneckConfig())
    with pytest.raises(XLTError, match="differ in kind or config"):
        model.compose("x", {"de/prompt": 1, "sk/prompt": 1})
    with pytest.raises(XLTError, match="differ in kind or config"):
        model.compose("x", {"de/prompt": 1, "sw/bottleneck": 1})
    with pytest.raises(XLTError, match="non-negative weights"):
        model.compose("x", {"de/prompt": -1})
    with pytest.raises(XLTError, match="sum to 0"):
        model.compose("x", {"de/prompt": 0})
    with pytest.raises(XLTError, match="no rep 'nope'"):
        model.compose("x", {"nope": 1})
    assert "x" not in model.reps


def test_weights_prefer_the_targets_script_and_never_the_target():
    assert composition_weights("sk", ["en", "de", "zh", "sk", "te"]) == {"en": 0.5, "de": 0.5}
    assert composition_weights("te", ["en", "zh", "te"]) == {"en": 0.5, "zh": 0.5}  # no other Telugu script
    assert composition_weights("en", ["en"]) == {}


def test_composed_configurations_share_their_twins_training():
    names = [c.name for c in COMPOSED_CONFIGURATIONS]
    assert names == ["LA+TA-avg", "LA+TP-avg", "SLP+TA-avg", "SLP+TP-avg"]
    avg, twin = resolve_configurations(["SLP+TA-avg", "SLP+TA"], {})
    assert avg.task_rep("t", "en", 1) == twin.task_rep("t", "en", 1)
    assert avg.test_plan("sk", "r").reps == ("sk/prompt-composed", "r") and twin.test_plan("sk", "r") == twin.plan(
        "sk", "r"
    )
    with pytest.raises(XLTError, match="exclude each other"):
        Configuration("x", "prompt", "prompt", cycle=True, compose=True)
    with pytest.raises(XLTError, match="compose: true needs a language kind"):
        resolve_configurations(["x"], {"x": {"task": "prompt", "compose": True}})


def test_a_composed_configuration_runs_in_a_matrix(tmp_path):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    spec["configurations"] = ["SLP+TA", "SLP+TA-avg"]
    lines: list[str] = []
    result = run_matrix(load_config(spec), log=lines.append)
    assert all(r["status"] == "ok" for r in result) and len(result) == 6
    task_dirs = [d.name for d in (tmp_path / "out" / "reps" / "task").iterdir() if (d / "run.json").is_file()]
    assert task_dirs == ["toy-en-slp-ta-seed42"]  # trained once, tested twice
    by = {(r["configuration"], r["target"]): r for r in result}
    for target in ("en", "de", "sk"):
        composed = by[("SLP+TA-avg", target)]["reps"]["language"]
        assert composed["name"] == f"{target}/prompt-composed"
        assert set(composed["composed_from"]) == {f"{lang}/prompt" for lang in ("en", "de", "sk") if lang != target}
        assert by[("SLP+TA-avg", target)]["reps"]["task"] == by[("SLP+TA", target)]["reps"]["task"]


def test_a_slug_shared_with_a_composed_configurations_twin_is_refused():
    with pytest.raises(XLTError, match="collide"):
        resolve_configurations(["la_ta", "LA+TA-avg"], {"la_ta": {"language": "prompt", "task": "bottleneck"}})
    assert len(resolve_configurations(["LA+TA", "LA+TA-avg"], {})) == 2


def test_compose_refuses_weights_that_are_not_numbers():
    model = tiny_model("bert")
    model.add_language("de", PromptConfig(num_virtual_tokens=3, init="vocab"))
    for bad in (float("nan"), float("inf"), True):
        with pytest.raises(XLTError, match="non-negative weights"):
            model.compose("x", {"de/prompt": bad})
