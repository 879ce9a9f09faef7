"""What the PEFT and AdapterHub importers share: safe reading of foreign files, the imported rep's name, and its
provenance.

Both PEFT and AdapterHub name their config ``adapter_config.json``; loading their weights never runs code from
the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from xlt.errors import FormatError, XLTError
from xlt.formats.tensors import check_finite, check_safetensors, read_safetensors
from xlt.reps.base import Role, check_name
from xlt.reps.identity import default_name, provenance

if TYPE_CHECKING:
    from xlt.model import XLTModel

FOREIGN_CONFIG_NAME = "adapter_config.json"


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FormatError(f"{path} does not exist; point at the directory the adapter was saved to")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); re-save the adapter") from exc
    if not isinstance(data, dict):
        raise FormatError(f"{path} holds a JSON {type(data).__name__}, not an object; re-save the adapter")
    return data


def load_tensors(directory: Path, safe_name: str, pickle_name: str) -> tuple[dict[str, torch.Tensor], Path]:
    """Read ``safe_name`` (safetensors) if present, else ``pickle_name`` by ``torch.load(weights_only=True)``.

    ``weights_only=True`` rebuilds tensors and plain containers only and refuses any other object, so no code
    from the file runs; a pickle that needs more is refused with a request to convert it to safetensors.
    """
    safe = directory / safe_name
    if safe.is_file():
        check_safetensors(safe)
        return read_safetensors(safe, "re-save the adapter"), safe
    pickled = directory / pickle_name
    if not pickled.is_file():
        raise FormatError(
            f"{directory} holds neither {safe_name} nor {pickle_name}; the adapter was not saved completely"
        )
    return _load_pickled(pickled, safe_name), pickled


def _load_pickled(pickled: Path, safe_name: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(pickled, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(
            f"{pickled} cannot be read safely ({reason}); convert it to {safe_name} with safetensors "
            "(in an environment you trust) and import that"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FormatError(f"{pickled} is not a flat dict of tensors; convert it to {safe_name} with safetensors")
    check_finite(state, pickled)
    return {str(k): v for k, v in state.items()}


def imported_identity(
    role: Role | str, language: str | None, task: str | None, name: str | None, kind: str
) -> tuple[Role, str]:
    """The role and the bank name an imported rep gets (``sk/prompt`` style, as :meth:`XLTModel.add`), checked
    before any file is read."""
    role = Role.parse(role)
    for key, value in (("language", language), ("task", task)):
        if value is not None and not isinstance(value, str):
            raise XLTError(f"{key}= must be a string, got {value!r} ({type(value).__name__})")
    return role, check_name(name if name is not None else default_name(role, language, task, kind))


def import_provenance(source_format: str, path: Path, **details: Any) -> dict[str, Any]:
    """Provenance of an imported rep: the format and directory it came from, then ``details``."""
    return provenance(source_format=source_format, source_path=str(path.resolve()), **details)


def check_base_name(model: XLTModel, recorded: str | None, path: Path, allow_other_base: bool) -> None:
    """A foreign file names the base model it was saved for: refuse another base unless the caller vouches."""
    if not recorded or allow_other_base or recorded == model.fingerprint.name:
        return
    raise FormatError(
        f"{path} was saved for base model '{recorded}', not '{model.fingerprint.name}' (load it on "
        f"'{recorded}', or pass allow_other_base=True if the weights are the same)"
    )
