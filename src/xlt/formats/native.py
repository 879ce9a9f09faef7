"""xlt's own format: a directory with ``xlt_rep.json`` (kind, role, hyper-parameters, head, base model
fingerprint, provenance) and ``rep.safetensors``. Loading never unpickles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from xlt.errors import FormatError
from xlt.formats.atomic import atomic_directory
from xlt.reps.base import RepInfo, Representation
from xlt.reps.context import BuildContext
from xlt.reps.heads import Head, HeadConfig
from xlt.reps.registry import get_kind

if TYPE_CHECKING:
    from xlt.model import XLTModel

CONFIG_NAME = "xlt_rep.json"
WEIGHTS_NAME = "rep.safetensors"
FORMAT_VERSION = 1


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
    return data


def load_rep(
    model: XLTModel, directory: str | Path, *, name: str | None = None, allow_other_base: bool = False
) -> Representation:
    """Build the rep for ``model``, check its fingerprint, load its weights (shapes checked) and attach it."""
    directory = Path(directory)
    data = read_rep_config(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise FormatError(f"{directory} has {CONFIG_NAME} but no {WEIGHTS_NAME}; the rep was not saved completely")
    try:
        kind = get_kind(data["kind"])
        config = kind.config_cls.from_dict(data["config"])
        info = RepInfo.from_dict(data)
        head_config = HeadConfig.from_dict(data["head"]) if data.get("head") else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # XLTError is a ValueError
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise FormatError(f"{directory / CONFIG_NAME} is not a valid xlt rep config ({what}); re-save the rep") from exc
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
        raise FormatError(f"{weights} is not a readable safetensors file ({exc}); re-save the rep") from exc
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
