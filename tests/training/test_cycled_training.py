"""Target-language-ready task training (``cycle``): the language slot cycles through several frozen language
representations, one per training row, while development data is scored with the source's."""

from __future__ import annotations

import json

import pytest
import torch
import training_helpers as th

from xlt import PromptConfig, XLTError
from xlt.training.task import TaskRun, cycling, train_task


def _model(languages: tuple[str, ...] = ("en", "sk", "sw")):
    model = th.model("bert")
    for i, language in enumerate(languages):
        model.add_language(language, PromptConfig(num_virtual_tokens=2, init="vocab", seed=7 + i))
    return model


def _run(tmp_path, name: str, cycle: list[str], **train) -> TaskRun:
    train_config = th.quick(steps=4, eval_every=2, **train)
    return th.toy_task_run(tmp_path, name, (60, 12), train_config, language_rep="en/prompt", cycle_language_reps=cycle)


def _weights(model, name: str) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.rep(name).state_dict().items()}


def test_rows_take_the_slots_in_turn():
    assert list(cycling(iter("abcde"), 3)) == [("a", 0), ("b", 1), ("c", 2), ("d", 0), ("e", 1)]


def test_cycling_over_the_source_alone_is_plain_training_to_the_bit(tmp_path):
    # Routed rows under one plan each are the batch under that plan: exact routing makes the two runs one.
    model = _model()
    train_task(model, _run(tmp_path, "plain", []), log=th.silent)
    train_task(model, _run(tmp_path, "alone", ["en/prompt"]), log=th.silent)
    plain, alone = _weights(model, "toy/plain"), _weights(model, "toy/alone")
    assert plain.keys() == alone.keys()
    assert all(torch.equal(plain[k], alone[k]) for k in plain)


def test_cycled_training_meets_every_language_and_records_them(tmp_path):
    model = _model()
    seen: list[list[str]] = []
    original = model.forward

    def spy(*args, **kwargs):
        if kwargs.get("plans") is not None and model.training:
            seen.append([p.reps[0] for p in kwargs["plans"]])
        return original(*args, **kwargs)

    model.forward = spy  # type: ignore[method-assign]
    cycle = ["en/prompt", "sk/prompt", "sw/prompt"]
    train_task(model, _run(tmp_path, "cyc", cycle), log=th.silent)
    assert seen and seen[0] == ["en/prompt", "sk/prompt", "sw/prompt", "en/prompt"]  # batch 4, three slots
    assert {name for rows in seen for name in rows} == set(cycle)
    model.forward = original  # type: ignore[method-assign]
    train_task(model, _run(tmp_path, "plain", []), log=th.silent)
    cycled, plain = _weights(model, "toy/cyc"), _weights(model, "toy/plain")
    assert any(not torch.equal(cycled[k], plain[k]) for k in plain)
    record = json.loads((tmp_path / "cyc" / "run.json").read_text())["config"]
    assert record["run"]["cycle_language_reps"] == cycle
    assert [r["name"] for r in record["cycle_language_reps"]] == cycle
    assert all(len(r["weights"]) == 64 for r in record["cycle_language_reps"])
    # A plain run records itself as before the option existed.
    assert "cycle_language_reps" not in json.loads((tmp_path / "plain" / "run.json").read_text())["config"]["run"]


def test_a_cycled_run_is_reused_and_retrained_when_a_cycled_rep_changes(tmp_path):
    model = _model()
    cycle = ["en/prompt", "sk/prompt"]
    train_task(model, _run(tmp_path, "cyc", cycle), log=th.silent)
    lines: list[str] = []
    train_task(model, _run(tmp_path, "cyc", cycle), log=lines.append)
    assert any("reusing" in line for line in lines)
    with torch.no_grad():
        for p in model.rep("sk/prompt").parameters():
            p.add_(1.0)
    with pytest.raises(XLTError, match="different run"):
        train_task(model, _run(tmp_path, "cyc", cycle), log=th.silent)
