"""The loop's typed state on disk: trainer.json keeps the keys (and their order) every checkpoint has written, a
checkpoint round-trips to an equal state, older and damaged checkpoints are read as before."""

from __future__ import annotations

import json

import pytest
import torch

from xlt.errors import FormatError
from xlt.training.checkpoint import TrainingState, has_checkpoint, load_checkpoint, save_checkpoint, trainable_weights
from xlt.training.optim import build_optimizer, linear_schedule

# The keys of trainer.json since checkpoints exist: a checkpoint written by any xlt must resume.
TRAINER_JSON = ["step", "best", "best_step", "patience", "history", "tokens", "seconds", "stopped_early"]


def training(seed: int = 0) -> tuple[dict[str, torch.nn.Module], torch.optim.Optimizer, object]:
    torch.manual_seed(seed)
    modules = {"sk/bottleneck": torch.nn.Linear(4, 3)}
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = build_optimizer(params, "bottleneck")
    scheduler = linear_schedule(optimizer, 10, warmup_steps=2)
    for _ in range(2):
        sum((p**2).sum() for p in params).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return modules, optimizer, scheduler


def tensors(modules: dict[str, torch.nn.Module]) -> list[list[float]]:
    return [p.tolist() for m in modules.values() for p in m.parameters()]


def a_state(modules: dict[str, torch.nn.Module]) -> TrainingState:
    history = [{"loss": 2.5, "step": 2}, {"loss": 2.25, "step": 4}]
    return TrainingState(4, 2.25, 4, 0, history, 640, 1.5, False, trainable_weights(modules))


def test_trainer_json_keeps_its_keys_in_order(tmp_path):
    modules, optimizer, scheduler = training()
    save_checkpoint(tmp_path / "checkpoint", a_state(modules), modules, optimizer, scheduler)
    trainer = json.loads((tmp_path / "checkpoint" / "trainer.json").read_text())
    assert list(trainer) == TRAINER_JSON
    assert trainer["history"] == [{"loss": 2.5, "step": 2}, {"loss": 2.25, "step": 4}] and trainer["tokens"] == 640
    names = {p.name for p in (tmp_path / "checkpoint").iterdir()}
    assert {"trainer.json", "trainable.safetensors", "best.safetensors", "optimizer.json", "rng.json"} <= names


def test_a_checkpoint_round_trips_to_an_equal_state(tmp_path):
    modules, optimizer, scheduler = training()
    state = a_state(modules)
    save_checkpoint(tmp_path / "checkpoint", state, modules, optimizer, scheduler)
    fresh, fresh_optimizer, fresh_scheduler = training(seed=1)
    assert has_checkpoint(tmp_path / "checkpoint")
    loaded = load_checkpoint(tmp_path / "checkpoint", fresh, fresh_optimizer, fresh_scheduler)
    assert loaded.to_trainer_json() == state.to_trainer_json()
    assert loaded.best_weights is not None and state.best_weights is not None
    assert all(torch.equal(loaded.best_weights[k], v) for k, v in state.best_weights.items())
    assert tensors(fresh) == tensors(modules)
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()


def test_a_checkpoint_from_before_early_stopping_was_recorded_resumes(tmp_path):
    modules, optimizer, scheduler = training()
    save_checkpoint(tmp_path, TrainingState(step=2, history=[], best_weights=None), modules, optimizer, scheduler)
    trainer = json.loads((tmp_path / "trainer.json").read_text())
    del trainer["stopped_early"]
    (tmp_path / "trainer.json").write_text(json.dumps(trainer))
    state = load_checkpoint(tmp_path, *training())
    assert state.step == 2 and state.stopped_early is False and state.best_weights is None


def test_a_trainer_json_without_a_key_is_one_format_error(tmp_path):
    modules, optimizer, scheduler = training()
    save_checkpoint(tmp_path, a_state(modules), modules, optimizer, scheduler)
    trainer = json.loads((tmp_path / "trainer.json").read_text())
    del trainer["tokens"]
    (tmp_path / "trainer.json").write_text(json.dumps(trainer))
    with pytest.raises(FormatError, match=r"cannot be resumed \(KeyError: 'tokens'\); delete it to restart"):
        load_checkpoint(tmp_path, *training())
