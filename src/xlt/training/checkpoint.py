"""Training checkpoints as data: tensors in safetensors, everything else in JSON, written atomically.

Nothing is unpickled on resume, not even xlt's own optimiser state. A checkpoint directory holds
``trainable.safetensors`` (the weights being trained), ``best.safetensors`` (the best ones so far, once there is
an evaluation), ``optimizer``, ``scheduler``, ``rng`` and ``trainer`` (a ``TrainingState``), each as JSON plus
safetensors for its tensors.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim import Optimizer

from xlt.errors import FormatError, XLTError
from xlt.formats.atomic import atomic_directory

_TENSOR = "__tensor__"


def _split(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor inside a nested structure by a reference into ``tensors``."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().cpu().contiguous()
        return {_TENSOR: prefix}
    if isinstance(value, dict):
        return {str(k): _split(v, f"{prefix}.{k}", tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]
    return value


def _join(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TENSOR}:
            return tensors[value[_TENSOR]]
        return {k: _join(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, tensors) for v in value]
    return value


def save_state(directory: Path, name: str, state: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, name, tensors)
    if tensors:
        save_file(tensors, str(directory / f"{name}.safetensors"))
    (directory / f"{name}.json").write_text(json.dumps(skeleton))


def load_state(directory: Path, name: str) -> dict[str, Any]:
    skeleton_path = directory / f"{name}.json"
    if not skeleton_path.is_file():
        raise FormatError(f"checkpoint {directory} lacks {name}.json; it is incomplete (delete it to restart)")
    tensors_path = directory / f"{name}.safetensors"
    tensors = load_file(str(tensors_path)) if tensors_path.is_file() else {}
    return _join(json.loads(skeleton_path.read_text()), tensors)


def optimizer_state(optimizer: Optimizer) -> dict[str, Any]:
    state = optimizer.state_dict()
    # JSON turns integer keys into strings: keep the per-parameter state as a list of pairs.
    return {"state": [[k, v] for k, v in state["state"].items()], "param_groups": state["param_groups"]}


def load_optimizer_state(optimizer: Optimizer, data: dict[str, Any]) -> None:
    optimizer.load_state_dict({"state": {int(k): v for k, v in data["state"]}, "param_groups": data["param_groups"]})


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": np.random.get_state()[1].tolist(),
        "numpy_pos": int(np.random.get_state()[2]),
        "numpy_gauss": [int(np.random.get_state()[3]), float(np.random.get_state()[4])],
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    has_gauss, gauss = state.get("numpy_gauss", (0, 0.0))
    np.random.set_state(("MT19937", np.asarray(state["numpy"], dtype=np.uint32), state["numpy_pos"], has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# trainer.json's keys, in the order every checkpoint has written them.
TRAINER_KEYS = ("step", "best", "best_step", "patience", "history", "tokens", "seconds", "stopped_early")


@dataclass
class TrainingState:
    """Where a run stands, all that a resumed run needs besides the weights, optimiser, schedule and RNGs.

    Args:
        step: optimiser steps taken.
        best: the best value of the selection metric so far (None before the first evaluation).
        best_step: the step that reached it.
        patience: evaluations since the last improvement (early stopping counts them).
        history: every evaluation's scores, each with its ``step``.
        tokens: tokens trained on, over all processes.
        seconds: training time, summed over the run's resumptions up to the last checkpoint.
        stopped_early: early stopping ended the run (a resumed run stays stopped).
        best_weights: the trainable weights at ``best_step`` (``trainable_weights``), restored at the end.
    """

    step: int = 0
    best: float | None = None
    best_step: int | None = None
    patience: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    best_weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def to_trainer_json(self) -> dict[str, Any]:
        """What ``trainer.json`` holds: every field but the best weights, which have their own file."""
        return json.loads(json.dumps({key: getattr(self, key) for key in TRAINER_KEYS}))

    @classmethod
    def from_trainer_json(cls, data: dict[str, Any], best_weights: dict[str, torch.Tensor] | None) -> TrainingState:
        # Checkpoints written before early stopping was recorded lack stopped_early: they had not stopped.
        return cls(
            step=int(data["step"]),
            best=data["best"],
            best_step=data["best_step"],
            patience=data["patience"],
            history=data["history"],
            tokens=int(data["tokens"]),
            seconds=float(data["seconds"]),
            stopped_early=bool(data.get("stopped_early", False)),
            best_weights=best_weights,
        )


def trainable_weights(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """A copy of the modules' weights on the CPU, keyed ``{module name}::{parameter}``."""
    return {f"{name}::{k}": v.detach().cpu().clone() for name, m in modules.items() for k, v in m.state_dict().items()}


def load_trainable_weights(modules: dict[str, nn.Module], weights: dict[str, torch.Tensor]) -> None:
    for name, module in modules.items():
        prefix = f"{name}::"
        module.load_state_dict({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)})


def has_checkpoint(directory: Path) -> bool:
    return (directory / "trainer.json").is_file()


def save_checkpoint(
    directory: Path, state: TrainingState, trainable: dict[str, nn.Module], optimizer: Any, scheduler: Any
) -> None:
    """Replace the checkpoint in ``directory`` by the run as it stands, atomically (a kill keeps the old one)."""
    with atomic_directory(directory, marker="trainer.json") as tmp:
        save_file(trainable_weights(trainable), str(tmp / "trainable.safetensors"))
        if state.best_weights is not None:
            save_file(state.best_weights, str(tmp / "best.safetensors"))
        save_state(tmp, "optimizer", optimizer_state(_unwrapped(optimizer)))
        save_state(tmp, "scheduler", scheduler.state_dict())
        save_state(tmp, "rng", rng_state())
        save_state(tmp, "trainer", state.to_trainer_json())


def load_checkpoint(directory: Path, trainable: dict[str, nn.Module], optimizer: Any, scheduler: Any) -> TrainingState:
    """The checkpoint's state, its weights, optimiser, schedule and RNGs restored. A checkpoint damaged on disk
    (edited, truncated, half copied) is one error saying how to start over."""
    try:
        trainer = load_state(directory, "trainer")
        load_trainable_weights(trainable, load_file(str(directory / "trainable.safetensors")))
        best = load_file(str(directory / "best.safetensors")) if (directory / "best.safetensors").is_file() else None
        load_optimizer_state(_unwrapped(optimizer), load_state(directory, "optimizer"))
        scheduler.load_state_dict(load_state(directory, "scheduler"))
        restore_rng(load_state(directory, "rng"))
        return TrainingState.from_trainer_json(trainer, best)
    except XLTError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(
            f"checkpoint {directory} cannot be resumed ({type(exc).__name__}: {reason[:200]}); delete it to "
            "restart this run from step 0"
        ) from None


def _unwrapped(optimizer: Any) -> Optimizer:
    # Accelerate wraps the optimiser; its state is the inner one's.
    return optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer
