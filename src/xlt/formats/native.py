"""xlt's own format: a directory with ``xlt_rep.json`` (kind, role, hyper-parameters, head, base model
fingerprint, provenance) and ``rep.safetensors``. Loading never unpickles."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from xlt.errors import FormatError
from xlt.formats.atomic import atomic_directory
from xlt.reps.base import RepConfig, RepInfo, Representation, check_name
from xlt.reps.context import BuildContext
from xlt.reps.heads import Head, HeadConfig
from xlt.reps.registry import Kind, get_kind

if TYPE_CHECKING:
    from xlt.model import XLTModel

CONFIG_NAME = "xlt_rep.json"
WEIGHTS_NAME = "rep.safetensors"
FORMAT_VERSION = 1
# a safetensors header is JSON of some kilobytes; a length past this is a damaged or foreign file
MAX_HEADER_BYTES = 100_000_000


def save_rep(rep: Representation, directory: str | Path) -> Path:
    directory = Path(directory)
    data: dict[str, Any] = {
        "format": "xlt-rep",
        "format_version": FORMAT_VERSION,
        **rep.info.to_dict(),
        "config": rep.config.to_dict(),
        "head": rep.head.config.to_dict() if rep.head is not None else None,
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in rep.state_dict().items()}
    with atomic_directory(directory, marker=CONFIG_NAME) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "xlt-rep"})
        (tmp / CONFIG_NAME).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return directory


def read_rep_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FormatError(
            f"{directory} holds no {CONFIG_NAME} (not an xlt rep; for PEFT or AdapterHub files use "
            "xlt.formats.import_peft_prompt / import_adapterhub)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); re-save the rep") from exc
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path} is not UTF-8 text ({exc.reason}); re-save the rep") from exc
    if not isinstance(data, dict) or data.get("format") != "xlt-rep":
        raise FormatError(f'{path} is not an xlt rep config (missing "format": "xlt-rep")')
    version = data.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise FormatError(
            f"{path} has format_version {version!r}; this xlt reads version {FORMAT_VERSION} (upgrade xlt, or "
            "re-save the rep with this one)"
        )
    return data


def parse_rep_config(directory: str | Path, data: dict[str, Any]) -> tuple[Kind, RepConfig, RepInfo, HeadConfig | None]:
    """The kind, config, identity and head a rep config records; any bad field is a FormatError naming it."""
    try:
        kind = get_kind(data["kind"])
        config = kind.config_cls.from_dict(data["config"])
        info = RepInfo.from_dict(data)
        head_config = HeadConfig.from_dict(data["head"]) if data.get("head") is not None else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # XLTError is a ValueError
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise FormatError(
            f"{Path(directory) / CONFIG_NAME} is not a valid xlt rep config ({what}); re-save the rep"
        ) from exc
    return kind, config, info, head_config


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


def check_weights(directory: str | Path) -> Path:
    """The weights file of an xlt rep directory, verified present and complete (see :func:`check_safetensors`)."""
    weights = Path(directory) / WEIGHTS_NAME
    if not weights.is_file():
        raise FormatError(
            f"{directory} has {CONFIG_NAME} but no {WEIGHTS_NAME}; the rep was not saved completely (re-save it)"
        )
    check_safetensors(weights)
    return weights


def check_rep(directory: str | Path) -> dict[str, Any]:
    """Everything about an xlt rep directory that needs no model: its config parses and its weights are whole."""
    data = read_rep_config(directory)
    parse_rep_config(directory, data)
    check_weights(directory)
    return data


def check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """NaN or inf weights would run and silently poison every row that uses the rep."""
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise FormatError(f"{path}: tensor {key} holds NaN or inf values; the weights are damaged (re-save them)")


def load_rep(
    model: XLTModel, directory: str | Path, *, name: str | None = None, allow_other_base: bool = False
) -> Representation:
    """Build the rep for ``model``, check its fingerprint, load its weights (shapes checked) and attach it."""
    if name is not None:  # a name is a bank key: refused before any file is read
        check_name(name)
    directory = Path(directory)
    data = read_rep_config(directory)
    weights = check_weights(directory)
    kind, config, info, head_config = parse_rep_config(directory, data)
    if name is not None:
        info.name = name
    if info.fingerprint is not None:
        fingerprint = info.fingerprint
        if allow_other_base:
            from xlt.fingerprint import Fingerprint

            fingerprint = Fingerprint(model.fingerprint.name, *list(fingerprint.shape.values()))
        fingerprint.check_compatible(model.fingerprint, info.name)
    # what this host cannot take is refused as such, before building it or reading its weights
    model._check_kind(config, info.name)
    if head_config is not None:
        model._check_head(info.name, info.role, head_config)
    ctx = BuildContext(model.base, model.host, model.tokenizer, None, info.task)
    if config.kind == "prompt":
        # Text init would tokenise and look up embeddings only to be overwritten: start from zeros instead.
        config_for_build = kind.config_cls.from_dict({**data["config"], "init": "random"})
    else:
        config_for_build = config
    body = kind.build(config_for_build, ctx)
    head = Head(head_config, ctx.hidden_size) if head_config is not None else None
    rep = Representation(info, config, body, head)
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as exc:  # safetensors raises its own error type (and OSError) on a corrupt file
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FormatError(f"{weights} is not a readable safetensors file ({reason}); re-save the rep") from exc
    check_finite(state, weights)
    expected = rep.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise FormatError(
            f"{weights} does not fit a {info.kind} rep on this model (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); it was saved from another model or kind"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise FormatError(
                f"{weights}: tensor {key} has shape {tuple(value.shape)}, expected "
                f"{tuple(expected[key].shape)} on this model"
            )
    with torch.no_grad():
        rep.load_state_dict(state)
    return model.attach(rep, allow_other_base=allow_other_base)
