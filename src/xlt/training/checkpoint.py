"""Training checkpoints as data: tensors in safetensors, everything else in JSON, written atomically.

Nothing is unpickled on resume, not even xlt's own optimiser state.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.optim import Optimizer

from xlt.errors import FormatError

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
