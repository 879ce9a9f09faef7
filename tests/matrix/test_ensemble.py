"""Languages without a corpus, at the output: the ``-ens`` configurations mix the task head's distributions under
the other languages' representations per example, with entropy-minimised weights."""

from __future__ import annotations

import pytest
import torch
from matrix_helpers import world

from xlt import XLTError
from xlt.matrix import load_config, run_matrix
from xlt.matrix.configurations import ENSEMBLE_CONFIGURATIONS, Configuration, resolve_configurations
from xlt.training.ensemble import entropy_minimised


def test_weights_move_to_the_confident_member_per_row():
    confident = torch.tensor([[0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])
    unsure = torch.tensor([[0.34, 0.33, 0.33], [0.05, 0.9, 0.05]])
    mixture, weights = entropy_minimised(torch.stack([confident, unsure]))
    assert weights.shape == (2, 2)
    assert weights[0, 0] > 0.9 and weights[1, 1] > 0.9  # each row picks its own confident member
    torch.testing.assert_close(mixture.sum(-1), torch.ones(2))
    assert mixture[0].argmax() == 0 and mixture[1].argmax() == 1


def test_identical_members_keep_uniform_weights_and_the_same_prediction():
    p = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    mixture, weights = entropy_minimised(torch.stack([p, p, p]))
    torch.testing.assert_close(weights, torch.full((2, 3), 1 / 3))
    torch.testing.assert_close(mixture, p)


def test_padding_positions_do_not_steer_token_weights():
    # member 0 is confident on the real token, member 1 only on the padding position
    a = torch.tensor([[[0.95, 0.05], [0.5, 0.5]]])
    b = torch.tensor([[[0.5, 0.5], [0.999, 0.001]]])
    mask = torch.tensor([[1, 0]])
    _, weights = entropy_minimised(torch.stack([a, b]), mask)
    assert weights[0, 0] > 0.9
    _, unmasked = entropy_minimised(torch.stack([a, b]))
    assert unmasked[0, 0] < weights[0, 0]


def test_ensemble_runs_inside_inference_mode():
    with torch.inference_mode():
        probs = torch.tensor([[[0.7, 0.3]], [[0.4, 0.6]]])
        mixture, _ = entropy_minimised(probs)
    assert mixture.shape == (1, 2)


def test_ensemble_configurations_share_their_twins_training():
    assert [c.name for c in ENSEMBLE_CONFIGURATIONS] == ["LA+TA-ens", "LA+TP-ens", "SLP+TA-ens", "SLP+TP-ens"]
    ens, twin = resolve_configurations(["SLP+TA-ens", "SLP+TA"], {})
    assert ens.task_rep("t", "en", 1) == twin.task_rep("t", "en", 1) and ens.without_own
    with pytest.raises(XLTError, match="ensemble takes none of cycle, compose and align"):
        Configuration("x", "prompt", "prompt", compose=True, ensemble=True)
    with pytest.raises(XLTError, match="ensemble: true needs a language kind"):
        resolve_configurations(["x"], {"x": {"task": "prompt", "ensemble": True}})


@pytest.mark.orchestration
def test_an_ensemble_configuration_runs_in_a_matrix(tmp_path):
    spec = world(tmp_path, languages=["en", "de", "sk"])
    spec["configurations"] = ["SLP+TA", "SLP+TA-ens", "SLP+TP-ens"]
    result = run_matrix(load_config(spec), log=lambda _: None)
    by = {(r["configuration"], r["target"]): r for r in result}
    task_dirs = [d.name for d in (tmp_path / "out" / "reps" / "task").iterdir() if (d / "run.json").is_file()]
    assert sorted(task_dirs) == ["toy-en-slp-ta-seed42", "toy-en-slp-tp-seed42"]  # the twins' own, trained once
    for target in ("en", "de", "sk"):
        cell = by[("SLP+TA-ens", target)]
        assert cell["status"] == "ok", cell.get("error")
        language = cell["reps"]["language"]
        others = {f"{lang}/prompt" for lang in ("en", "de", "sk") if lang != target}
        assert set(language["ensemble_of"]) == others
        assert sum(language["mean_weights"].values()) == pytest.approx(1.0, abs=1e-3)
        assert cell["reps"]["task"] == by[("SLP+TA", target)]["reps"]["task"]
        assert cell["utilisation"] is None  # a mixture's members are not counted
        assert by[("SLP+TA", target)]["utilisation"]["flops_per_token"] > 0
    assert all(by[("SLP+TP-ens", t)]["status"] == "ok" for t in ("en", "de", "sk"))


def test_a_family_without_heads_has_nothing_to_mix():
    from training_helpers import model as tiny_model

    from xlt.plan import Plan
    from xlt.tasks import TextClassificationTask
    from xlt.training.task import TaskFormat

    model = tiny_model("t5")
    fmt = TaskFormat(model, TextClassificationTask("t", "a.jsonl", "b.jsonl", "c.jsonl"), ["w1", "w2"], 16)
    with pytest.raises(XLTError, match="an output ensemble mixes a task head's distributions"):
        fmt.mixed([], [Plan()])


@pytest.mark.orchestration
def test_ensembles_of_tag_heads_run_and_span_heads_are_refused_on_their_cells(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tasks"))
    from task_worlds import task_spec

    languages = ["en", "sw", "de"]
    spec = world(tmp_path, languages=languages)
    spec["tasks"] = {task: task_spec(tmp_path / "data", task, languages) for task in ("ner", "qa")}
    spec["configurations"] = ["LA+TA-ens"]
    spec["task_training"]["max_length"] = 24
    rows = run_matrix(load_config(spec), log=lambda _: None, report=False)
    ner = {r["target"]: r for r in rows if r["task"] == "ner"}
    assert all(r["status"] == "ok" for r in ner.values()), [r.get("error") for r in ner.values()]
    assert set(ner["sw"]["reps"]["language"]["ensemble_of"]) == {"en/bottleneck", "de/bottleneck"}
    assert {"precision", "recall", "f1"} <= set(ner["sw"]["metrics"])
    qa = [r for r in rows if r["task"] == "qa"]
    assert qa and all(r["status"] == "error" and "not a span head" in r["error"] for r in qa)
