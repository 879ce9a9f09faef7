"""xlt's own format: a directory with ``xlt_rep.json`` (kind, role, hyper-parameters, head, base model
fingerprint, provenance) and ``rep.safetensors``. Loading never unpickles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from safetensors.torch import save_file

from xlt.errors import FormatError
from xlt.formats.atomic import atomic_directory
from xlt.formats.tensors import check_safetensors, check_shapes, key_mismatch, read_safetensors
from xlt.reps.base import RepConfig, RepInfo, Representation, check_name
from xlt.reps.context import BuildContext
from xlt.reps.heads import Head, HeadConfig
from xlt.reps.identity import check_fits
from xlt.reps.registry import Kind, get_kind

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from xlt.fingerprint import Fingerprint
    from xlt.hosts.base import Host

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


class Bank(Protocol):
    """What loading a rep needs of the model it joins (an XLTModel)."""

    base: PreTrainedModel
    host: Host
    tokenizer: PreTrainedTokenizerBase | None
    fingerprint: Fingerprint

    def attach(self, rep: Representation, *, allow_other_base: bool = False) -> Representation: ...


def load_rep(
    model: Bank, directory: str | Path, *, name: str | None = None, allow_other_base: bool = False
) -> Representation:
    """Build the rep for ``model``, check its fingerprint, load its weights (shapes checked) and attach it."""
    rep = read_rep(model, directory, name=name, allow_other_base=allow_other_base)
    return model.attach(rep, allow_other_base=allow_other_base)


def read_rep(
    model: Bank, directory: str | Path, *, name: str | None = None, allow_other_base: bool = False
) -> Representation:
    """``load_rep`` without attaching: the checked rep, built for ``model`` with its weights, outside the bank
    (a server builds it while the bank computes, and attaches it between batches)."""
    if name is not None:  # a name is a bank key: refused before any file is read
        check_name(name)
    directory = Path(directory)
    data = read_rep_config(directory)
    weights = check_weights(directory)
    kind, config, info, head_config = parse_rep_config(directory, data)
    if name is not None:
        info.name = name
    check_fits(info.fingerprint, model.fingerprint, info.name, allow_other_base)
    # what this host cannot take is refused as such, before building it or reading its weights
    model.host.check_kind(config, info.name)
    if head_config is not None:
        model.host.check_head(info.name, info.role, head_config)
    rep = _build(model, kind, config, info, head_config)
    _load_weights(rep, weights)
    return rep


def _build(model: Bank, kind: Kind, config: RepConfig, info: RepInfo, head_config: HeadConfig | None) -> Representation:
    ctx = BuildContext(model.base, model.host, model.tokenizer, None, info.task)
    # The kind says how to build a body that the saved weights then overwrite (a prompt skips its text init).
    build_config = kind.for_loading(config) if kind.for_loading is not None else config
    body = kind.build(build_config, ctx)
    head = Head(head_config, ctx.hidden_size) if head_config is not None else None
    return Representation(info, config, body, head)


def _load_weights(rep: Representation, weights: Path) -> None:
    state = read_safetensors(weights, "re-save the rep")
    expected = rep.state_dict()
    missing, unexpected = key_mismatch(state, expected)
    if missing or unexpected:
        raise FormatError(
            f"{weights} does not fit a {rep.kind} rep on this model (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); it was saved from another model or kind"
        )
    check_shapes(weights, state, expected, "on this model")
    with torch.no_grad():
        rep.load_state_dict(state)
