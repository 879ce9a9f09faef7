"""The converged probe (the encoders' zero-shot baseline): logistic regression on the frozen model's pooled
features, fitted by L-BFGS to convergence with its L2 penalty chosen on the source language's dev set."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import training_helpers as th
from safetensors.torch import load_file

import xlt.training.probe_fit as probe_fit
from tiny_models import WORDS
from xlt.errors import XLTError
from xlt.matrix.config import ConfigError, load_config
from xlt.plan import Plan
from xlt.reps.heads import HeadConfig, pool
from xlt.reps.probe import DEFAULT_L2_GRID, ProbeConfig
from xlt.training.probe_fit import fits_converged, head_features
from xlt.training.task import TaskFormat, TaskRun, dev_score, train_task

GRID = [1.0, 0.1, 0.01, 0.001]
NAME = "t/probe"


def rows(n: int, seed: int) -> list[dict[str, str]]:
    """Two classes, each marked by its own word somewhere among five random ones: linearly separable in the
    bag of words, and close to it in a random encoder's mean-pooled states."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        label = rnd.randrange(2)
        words = rnd.sample(WORDS[20:100], 6)
        words[rnd.randrange(6)] = WORDS[4 + label]
        out.append({"text": " ".join(words), "label": f"c{label}"})
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("probe-data")
    return th.write_jsonl(directory / "train.jsonl", rows(200, 0)), th.write_jsonl(directory / "dev.jsonl", rows(60, 1))


def probe_run(files: tuple[Path, Path], out: Path, **options) -> TaskRun:
    # The demo's step budget: 120 steps of 16 at lr 1e-2, the best of an evaluation every 40 steps.
    train = th.quick(steps=120, batch_size=16, eval_every=40)
    return TaskRun(
        task="t", kind="probe", train_file=files[0], dev_file=files[1], output_dir=out, rep=options, train=train
    )


def trained(files: tuple[Path, Path], out: Path, **options):
    model = th.model("bert")
    rep_dir = train_task(model, probe_run(files, out, **options), log=th.silent)
    return model, rep_dir, json.loads((out / "result.json").read_text())


def dev_format(model, run: TaskRun) -> tuple[TaskFormat, list]:
    task = run.file_task()
    data = task.training_data("en")
    return TaskFormat(model, task, data.labels, run.max_length, source="en"), data


def objective(features: torch.Tensor, targets: torch.Tensor, weight, bias, l2: float) -> torch.Tensor:
    weight, bias = weight.double(), bias.double()
    return F.cross_entropy(F.linear(features.double(), weight, bias), targets) + 0.5 * l2 * weight.pow(2).sum()


def reference_features(model, fmt: TaskFormat, examples, train: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The pooled final states recomputed from the model's output, independently of the fit's capture."""
    batch = fmt.task.encode(fmt.tok, examples, fmt.labels, fmt.max_length, train=train)
    model.eval()
    with torch.no_grad():
        out = model(batch.input_ids, batch.attention_mask, plan=Plan.of(task=NAME))
    return pool(out.hidden_states, batch.attention_mask, "mean"), batch.labels


def test_the_converged_probe_beats_the_step_budget_and_reaches_the_optimum(files, tmp_path):
    model, _, converged = trained(files, tmp_path / "converged", l2_grid=GRID)
    steps_model, _, steps = trained(files, tmp_path / "steps", fit="steps")
    assert converged["best"]["accuracy"] >= 0.85 and steps["best"]["accuracy"] <= 0.75  # 0.883 and 0.7 here
    l2 = converged["fit"]["chosen_l2"]
    fmt, data = dev_format(model, probe_run(files, tmp_path / "x"))
    x, y = reference_features(model, fmt, data.train, train=True)
    head = model.rep(NAME).head.out
    weight = head.weight.detach().double().requires_grad_(True)
    bias = head.bias.detach().double().requires_grad_(True)
    objective(x, y, weight, bias, l2).backward()
    assert max(float(weight.grad.abs().max()), float(bias.grad.abs().max())) < 1e-4  # float32 weights of the optimum
    sgd = steps_model.rep(NAME).head.out
    assert objective(x, y, head.weight, head.bias, l2) < objective(x, y, sgd.weight, sgd.bias, l2)


def test_the_cached_features_are_what_the_head_sees_at_evaluation(files):
    model = th.model("bert").train()  # in training mode: the features must be evaluation's all the same
    rep = model.add_task("t", ProbeConfig(), head=HeadConfig("sequence", num_labels=2, labels=["c0", "c1"]))
    fmt, data = dev_format(model, probe_run(files, Path("unused")))
    features = head_features(fmt, data.dev, Plan.of(task=NAME), rep.head, 16, train=False)
    assert model.training  # the model's mode is given back
    assert features.values.shape == (60, 32) and features.targets is None and len(features.chunks) == 4
    for batch, examples, span in features.chunks:
        pooled, _ = reference_features(model, fmt, examples, train=False)
        torch.testing.assert_close(features.values[span], pooled)
        with torch.no_grad():
            logits = model(batch.input_ids, batch.attention_mask, plan=Plan.of(task=NAME)).logits
        assert torch.equal(F.linear(features.values[span], rep.head.out.weight, rep.head.out.bias), logits)
    train = head_features(fmt, data.train, Plan.of(task=NAME), rep.head, 16, train=True)
    assert train.targets.tolist() == [fmt.labels.index(e.label) for e in data.train]


def test_the_chosen_dev_score_is_the_dev_score_of_the_model(files, tmp_path):
    model, _, result = trained(files, tmp_path / "run", l2_grid=GRID)
    fmt, data = dev_format(model, probe_run(files, tmp_path / "x"))
    model.eval()
    with torch.no_grad():
        scores = dev_score(fmt, data.dev, Plan.of(task=NAME), 16, "en")
    assert result["best"]["accuracy"] == scores["accuracy"] and result["best"]["macro_f1"] == scores["macro_f1"]
    fit = result["fit"]
    assert fit["grid"] == GRID and len(fit["dev_scores"]) == len(fit["lbfgs_iterations"]) == 4
    assert fit["dev_scores"][fit["grid"].index(fit["chosen_l2"])] == scores["accuracy"]
    assert (fit["train_features"], fit["dev_features"]) == (200, 60)
    assert fit["feature_seconds"] > 0 and fit["fit_seconds"] > 0
    assert result["seconds"] == pytest.approx(fit["feature_seconds"] + fit["fit_seconds"])
    assert result["steps"] == sum(fit["lbfgs_iterations"]) and result["best_step"] <= result["steps"]
    assert [h["l2"] for h in result["history"]] == GRID and result["stopped_early"] is False


def test_the_grid_choice_follows_dev_and_a_tie_keeps_the_stronger_penalty(files, tmp_path, monkeypatch):
    scripted = iter([0.5, 0.9, 0.9, 0.7])  # best: 0.1 and 0.01 tie, so 0.1 (the first grid value loses)
    real = probe_fit.cached_scores
    monkeypatch.setattr(probe_fit, "cached_scores", lambda *a: {**real(*a), "accuracy": next(scripted)})
    monkeypatch.setattr(probe_fit, "dev_log_loss", lambda *a: 1.0)  # a tie on the log-loss too
    model, _, result = trained(files, tmp_path / "run", l2_grid=[0.01, 1.0, 0.001, 0.1])  # any order
    assert result["fit"]["grid"] == GRID and result["fit"]["chosen_l2"] == 0.1
    assert result["best"]["accuracy"] == 0.9 and result["best"]["l2"] == 0.1
    # the head holds the fit of 0.1: the optimum of that penalty (from the fits of 1.0 before it)
    fmt, data = dev_format(model, probe_run(files, tmp_path / "x"))
    x, y = reference_features(model, fmt, data.train, train=True)
    head = model.rep(NAME).head.out
    weight = head.weight.detach().double().requires_grad_(True)
    objective(x, y, weight, head.bias, 0.1).backward()
    assert float(weight.grad.abs().max()) < 1e-4
    monkeypatch.undo()
    first = trained(files, tmp_path / "first", l2_grid=[1.0])[0].rep(NAME).head.out.weight
    assert not torch.allclose(head.weight, first)


def test_the_fit_is_deterministic(files, tmp_path):
    _, first, one = trained(files, tmp_path / "one", l2_grid=GRID)
    _, second, two = trained(files, tmp_path / "two", l2_grid=GRID)
    a, b = load_file(str(first / "rep.safetensors")), load_file(str(second / "rep.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert one["history"] == two["history"]


def test_a_fit_stopped_by_max_iterations_is_a_warning(files, tmp_path):
    _, _, result = trained(files, tmp_path / "run", l2_grid=[0.001], max_iterations=2)
    assert result["fit"]["lbfgs_iterations"] == [2] and result["history"][0]["gradient"] > 1e-6
    assert result["warnings"] == [
        "probe: L-BFGS spent its 2 iterations before converging at l2 [0.001] (raise max_iterations)"
    ]
    _, _, converged = trained(files, tmp_path / "converged", l2_grid=[0.001])
    assert converged["warnings"] == [] and converged["history"][0]["gradient"] <= 1e-6


def test_a_reloaded_probe_predicts_exactly_as_the_trained_one(files, tmp_path):
    model, rep_dir, _ = trained(files, tmp_path / "run", l2_grid=GRID)
    fresh = th.model("bert")
    fresh.load_state_dict(model.state_dict(), strict=False)  # the same frozen base
    fresh.base.load_state_dict(model.base.state_dict())
    loaded = fresh.load_rep(rep_dir)
    assert loaded.config == ProbeConfig(l2_grid=GRID) and fits_converged(loaded)
    fmt, data = dev_format(model, probe_run(files, tmp_path / "x"))
    batch = fmt.task.encode(fmt.tok, data.dev, fmt.labels, fmt.max_length, train=False)
    model.eval(), fresh.eval()
    with torch.no_grad():
        want = model(batch.input_ids, batch.attention_mask, plan=Plan.of(task=NAME)).logits
        got = fresh(batch.input_ids, batch.attention_mask, plan=Plan.of(task=NAME)).logits
    assert torch.equal(want, got)


def test_fit_steps_keeps_the_step_loop(files, tmp_path):
    _, _, result = trained(files, tmp_path / "run", fit="steps")
    assert "fit" not in result and result["steps"] == 120
    assert [h["step"] for h in result["history"]] == [40, 80, 120]
    assert (tmp_path / "run" / "rep" / "rep.safetensors").is_file()


def test_the_run_records_its_fit_options_so_a_change_is_another_run(files, tmp_path):
    out = tmp_path / "run"
    trained(files, out, l2_grid=GRID)
    recorded = json.loads((out / "run.json").read_text())["config"]["run"]["rep"]
    assert recorded == {"fit": "converged", "l2_grid": GRID, "max_iterations": 1000, "tolerance": 1e-6}
    messages: list[str] = []
    train_task(th.model("bert"), probe_run(files, out, l2_grid=GRID), log=messages.append)
    assert messages == [f"{NAME}: already trained in {out}, reusing it"]
    with pytest.raises(XLTError, match=r"holds a different run.*l2_grid"):
        train_task(th.model("bert"), probe_run(files, out, l2_grid=[0.5]), log=th.silent)
    with pytest.raises(XLTError, match=r"holds a different run.*fit"):
        train_task(th.model("bert"), probe_run(files, out, l2_grid=GRID, fit="steps"), log=th.silent)
    defaults = json.loads(json.dumps(ProbeConfig().to_dict()))
    assert defaults["fit"] == "converged" and defaults["l2_grid"] == list(DEFAULT_L2_GRID)


def test_token_heads_keep_the_step_loop():
    model = th.model("bert")
    token = model.add_task("t", ProbeConfig(), head=HeadConfig("token", num_labels=3), name="t/token")
    sequence = model.add_task("t", ProbeConfig(), head=HeadConfig("sequence", num_labels=3), name="t/seq")
    steps = model.add_task("t", ProbeConfig(fit="steps"), head=HeadConfig("sequence", num_labels=3), name="t/s")
    assert [fits_converged(r) for r in (token, sequence, steps)] == [False, True, False]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fit": "sgd"}, "probe option fit='sgd' is unknown; use 'converged'"),
        ({"l2_grid": []}, "probe option l2_grid is empty; give at least one L2 penalty > 0"),
        ({"l2_grid": [0.1, -1.0]}, r"probe option l2_grid holds -1.0; every L2 penalty must be > 0"),
        ({"l2_grid": [0]}, r"probe option l2_grid holds 0; every L2 penalty must be > 0"),
        ({"l2_grid": 0.1}, r"probe option l2_grid=0.1 has the wrong type: expected a list of a finite number"),
        ({"l2_grid": [float("nan")]}, "probe option l2_grid=.* has the wrong type"),
        ({"max_iterations": 0}, r"probe option max_iterations=0 is out of range \[1, inf\)"),
        ({"tolerance": 0.0}, r"probe option tolerance=0.0 is out of range \(0.0, inf\)"),
        ({"steps": 3}, r"unknown probe option\(s\) \['steps'\]"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(XLTError, match=message) as raised:
        ProbeConfig.from_dict(options)
    assert "\n" not in str(raised.value)
    spec = {"model": "e5", "tasks": {"emoji": "builtin"}, "targets": ["en"], "task_training": {"probe": options}}
    with pytest.raises(ConfigError, match=rf"^task_training\.probe: {message}"):
        load_config(spec)


def test_a_matrix_config_gives_the_probe_its_options():
    spec = {"model": "e5", "tasks": {"emoji": "builtin"}, "targets": ["en"]}
    assert load_config(spec).task_training.options("probe") == {}
    config = load_config({**spec, "task_training": {"probe": {"fit": "steps", "l2_grid": [0.1]}}})
    assert config.task_training.options("probe") == {"fit": "steps", "l2_grid": [0.1]}
    assert config.recipe()["task_training"]["probe"] == {"fit": "steps", "l2_grid": [0.1]}


def test_a_tie_on_the_metric_goes_to_the_lower_dev_log_loss_then_the_stronger_penalty():
    history = [
        {"accuracy": 0.5, "dev_loss": 0.1},
        {"accuracy": 0.9, "dev_loss": 1.2},
        {"accuracy": 0.9, "dev_loss": 0.9},  # ties on accuracy, lower log-loss: chosen
        {"accuracy": 0.9, "dev_loss": 0.9},  # ties on both: the stronger penalty (earlier) stays
    ]
    assert probe_fit.best_index(history, "accuracy") == 2
    assert probe_fit.best_index([{"accuracy": 0.9}, {"accuracy": 0.9}], "accuracy") == 0
