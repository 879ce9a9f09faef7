"""Weights files and state dicts, checked before anything is built from them: a safetensors file whole, its
values finite, its tensors the names and shapes the rep expects."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from xlt.errors import FormatError

# a safetensors header is JSON of some kilobytes; a length past this is a damaged or foreign file
MAX_HEADER_BYTES = 100_000_000


def check_safetensors(path: Path) -> dict[str, Any]:
    """Verify a safetensors file's header and that the file holds every byte the header promises; returns
    the header. Cheap: reads the header only, never the tensors."""
    if not path.is_file():
        raise FormatError(f"{path} is missing; the weights were not saved (re-save them)")
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise FormatError(f"{path} is truncated ({size} bytes, shorter than a safetensors header); re-save it")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(size - 8, MAX_HEADER_BYTES):
                raise FormatError(
                    f"{path} is truncated or not safetensors (its header claims {length} bytes, the file holds "
                    f"{size}); re-save it"
                )
            header = json.loads(f.read(length))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path} has an unreadable safetensors header ({type(exc).__name__}); re-save it") from exc
    except OSError as exc:
        raise FormatError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions") from exc
    if not isinstance(header, dict):
        raise FormatError(f"{path} has a safetensors header that is not a JSON object; re-save it")
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise FormatError(f"{path}: tensor {key!r} has no valid data_offsets in the header; re-save it")
        end = max(end, offsets[1])
    if 8 + length + end > size:
        raise FormatError(
            f"{path} is truncated: its header promises {8 + length + end} bytes, the file holds {size}; re-save it"
        )
    return header


def check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """NaN or inf weights would run and silently poison every row that uses the rep."""
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise FormatError(f"{path}: tensor {key} holds NaN or inf values; the weights are damaged (re-save them)")


def read_safetensors(path: Path, remedy: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU and finite; ``remedy`` ends the error of an unreadable file."""
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error type (and OSError) on a damaged file
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FormatError(f"{path} is not a readable safetensors file ({reason}); {remedy}") from exc
    check_finite(tensors, path)
    return tensors


def key_mismatch(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    """The names ``expected`` has and ``state`` lacks, and those ``state`` has beyond them (each sorted)."""
    return sorted(set(expected) - set(state)), sorted(set(state) - set(expected))


def check_shapes(
    weights: Path, state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], against: str
) -> None:
    """Refuse the first tensor of ``state`` shaped unlike ``expected``'s tensor of that name; ``against`` says
    where the expected shapes come from (e.g. "on this model")."""
    key = next((key for key, value in state.items() if value.shape != expected[key].shape), None)
    if key is not None:
        raise FormatError(
            f"{weights}: tensor {key} has shape {tuple(state[key].shape)}, expected {tuple(expected[key].shape)} "
            f"{against}"
        )
