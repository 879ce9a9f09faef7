"""The ``paper`` preset holds exactly the settings of ../shared/PAPER.md; the CLI applies presets as defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.optim import AdamW
from transformers.optimization import Adafactor

from xlt.reps.prompt import LANGUAGE_INIT_TEXT
from xlt.tasks import PAPER_INIT_TEXTS as TASK_INIT_TEXTS
from xlt.train_cli import parser_for
from xlt.training.lm_batches import span_corruption_lengths
from xlt.training.optim import build_optimizer, linear_schedule
from xlt.training.presets import preset


@pytest.mark.parametrize(("role", "steps"), [("language", 100_000), ("task", 50_000)])
def test_paper_training_settings(role, steps):
    values = preset("paper", role)
    train = values["train"]
    assert train["steps"] == steps
    assert train["batch_size"] == 32 and train["gradient_accumulation"] == 1
    assert train["warmup_steps"] == 0 and train["precision"] == "fp32" and train["seed"] == 42
    assert train["eval_every"] == 1000 and train["defaults"] == "paper"
    assert values["objective"]["max_length"] == 256
    assert values["prompt"] == {"num_virtual_tokens": 50, "init": "text"}


def test_paper_span_corruption_is_256_in_58_out():
    objective = preset("paper", "language")["objective"]
    lengths = span_corruption_lengths(objective["max_length"], objective["noise_density"], objective["mean_span"])
    assert (objective["noise_density"], objective["mean_span"]) == (0.15, 3.0)
    assert (lengths.inputs, lengths.targets) == (256, 58)


def test_paper_optimisers_per_kind():
    p = torch.nn.Parameter(torch.zeros(3))
    prompt = build_optimizer([p], "prompt", defaults="paper")
    assert isinstance(prompt, Adafactor)
    group = prompt.param_groups[0]
    assert group["lr"] == 0.5 and group["weight_decay"] == 1e-5
    assert group["relative_step"] is False and group["scale_parameter"] is False
    for kind in ("bottleneck", "lora"):
        adam = build_optimizer([p], kind, defaults="paper")
        assert isinstance(adam, AdamW)
        assert adam.param_groups[0]["lr"] == 5e-5 and adam.param_groups[0]["weight_decay"] == 0.0


def test_linear_decay_without_warmup():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], "bottleneck", defaults="paper")
    schedule = linear_schedule(opt, total_steps=10, warmup_steps=0)
    rates = []
    for _ in range(10):
        rates.append(schedule.get_last_lr()[0])
        opt.step()
        schedule.step()
    assert rates[0] == pytest.approx(5e-5)
    assert rates == sorted(rates, reverse=True) and rates[-1] == pytest.approx(5e-6)


def test_init_texts():
    assert LANGUAGE_INIT_TEXT == "Generate the output in {language}:"
    assert TASK_INIT_TEXTS["qa"] == "Answer the question in {language} language:"
    assert TASK_INIT_TEXTS["ner"] == "Identify ner tags (ORG, PER, LOC) in the text in {language}:"
    assert TASK_INIT_TEXTS["nli"] == (
        'Select "Yes", "No" or "Maybe" based on the implication of the premise on the hypothesis in {language}:'
    )
    assert TASK_INIT_TEXTS["checkworthiness"] == "Determine whether a given claim in {language} is checkworthy:"


def test_cli_applies_the_preset_as_defaults_and_options_override_it():
    argv = [
        "--preset",
        "paper",
        "--language",
        "sk",
        "--kind",
        "prompt",
        "--corpus.files",
        "[a.txt]",
        "--output_dir",
        "out",
        "--train.lr",
        "0.1",
    ]
    cfg = parser_for("train-language", argv).parse_args(argv)
    assert cfg.train.steps == 100_000 and cfg.train.defaults == "paper" and cfg.objective.max_length == 256
    assert cfg.train.lr == 0.1
    fast = ["--language", "sk", "--kind", "prompt", "--corpus.files", "[a.txt]", "--output_dir", "out"]
    cfg = parser_for("train-language", fast).parse_args(fast)
    assert cfg.train.steps == preset("fast", "language")["train"]["steps"] and cfg.train.defaults == "fast"


def test_head_learning_rates():
    body, head = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    beside = build_optimizer([body, head], "prompt", head_params=[head], head_lr=1e-2)
    assert [g["lr"] for g in beside.param_groups] == [0.3, 1e-2]
    probe = build_optimizer([head], "probe", head_params=[head])  # the head is the whole representation
    assert isinstance(probe, AdamW) and [g["lr"] for g in probe.param_groups] == [1e-2]
    assert build_optimizer([head], "probe", lr=0.05, head_params=[head]).param_groups[0]["lr"] == 0.05


RUN_ARGS = ["--language", "sk", "--kind", "prompt", "--corpus.files", "[a.txt]", "--output_dir", "out"]


def test_a_preset_file_is_usable_with_config_and_preset(tmp_path):
    from importlib.resources import files

    shipped = str(files("xlt").joinpath("presets", "paper.yaml"))
    named = ["--preset", "paper", *RUN_ARGS]
    by_name = parser_for("train-language", named).parse_args(named)
    for argv in (["--config", shipped, *RUN_ARGS], ["--preset", shipped, *RUN_ARGS]):
        cfg = parser_for("train-language", argv).parse_args(argv)
        assert cfg.train == by_name.train and cfg.objective == by_name.objective
    edited = tmp_path / "mine.yaml"
    edited.write_text(Path(shipped).read_text().replace("steps: 100000", "steps: 1234", 1))
    argv = ["--config", str(edited), *RUN_ARGS, "--train.lr", "0.1"]
    cfg = parser_for("train-language", argv).parse_args(argv)
    assert cfg.train.steps == 1234 and cfg.train.defaults == "paper" and cfg.train.lr == 0.1
    assert preset(str(edited), "task")["prompt"] == preset("paper", "task")["prompt"]


def test_a_broken_preset_file_is_one_line(tmp_path, capsys):
    from xlt.cli import main

    broken = tmp_path / "broken.yaml"
    broken.write_text("language: {train: {steps: 3}}\ntask: {}\n")
    for argv, message in (
        (["--preset", str(broken)], "lacks a section"),
        (["--preset", str(tmp_path / "missing.yaml")], "does not exist"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["train-language", *argv, *RUN_ARGS])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.startswith("xlt: error:") and message in err
        assert err.count("\n") == 1
