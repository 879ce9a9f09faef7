"""What the PEFT and AdapterHub importers share: safe reading of foreign files, provenance, and
:func:`detect_format` / :func:`import_rep`, which tell the three on-disk formats apart and dispatch.

Both PEFT and AdapterHub name their config ``adapter_config.json``; the keys tell them apart: PEFT writes
``peft_type``, AdapterHub writes a nested ``config`` dict beside ``model_type``/``name``/``version``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from safetensors.torch import load_file

from xlt import __version__
from xlt.errors import FormatError, XLTError
from xlt.formats.native import CONFIG_NAME as XLT_CONFIG_NAME
from xlt.reps.base import Role, check_name

if TYPE_CHECKING:
    from xlt.model import XLTModel
    from xlt.reps.base import Representation

FOREIGN_CONFIG_NAME = "adapter_config.json"
Format = Literal["xlt", "peft-prompt", "adapterhub"]


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
    from xlt.formats.native import check_finite, check_safetensors

    safe = directory / safe_name
    if safe.is_file():
        check_safetensors(safe)
        try:
            tensors = load_file(str(safe), device="cpu")
        except Exception as exc:  # safetensors raises its own error type on a damaged file
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise FormatError(f"{safe} is not a readable safetensors file ({reason}); re-save the adapter") from exc
        check_finite(tensors, safe)
        return tensors, safe
    pickled = directory / pickle_name
    if not pickled.is_file():
        raise FormatError(
            f"{directory} holds neither {safe_name} nor {pickle_name}; the adapter was not saved completely"
        )
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
    return {str(k): v for k, v in state.items()}, pickled


def rep_identity(
    role: Role | str, language: str | None, task: str | None, name: str | None, kind: str
) -> tuple[Role, str]:
    """The role and the bank name an imported rep gets (``sk/prompt`` style, as :meth:`XLTModel.add`), checked
    before any file is read."""
    role = Role.parse(role)
    for key, value in (("language", language), ("task", task)):
        if value is not None and not isinstance(value, str):
            raise XLTError(f"{key}= must be a string, got {value!r} ({type(value).__name__})")
    return role, check_name(name if name is not None else f"{language if role is Role.LANGUAGE else task}/{kind}")


def provenance(source_format: str, path: Path, **details: Any) -> dict[str, Any]:
    return {
        "xlt_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_format": source_format,
        "source_path": str(path.resolve()),
        **{k: v for k, v in details.items() if v is not None},
    }


def check_base_name(model: XLTModel, recorded: str | None, path: Path, allow_other_base: bool) -> None:
    """Invariant 6 for foreign files: refuse a file saved for another base model unless the caller vouches."""
    if not recorded or allow_other_base or recorded == model.fingerprint.name:
        return
    raise FormatError(
        f"{path} was saved for base model '{recorded}', not '{model.fingerprint.name}' (load it on "
        f"'{recorded}', or pass allow_other_base=True if the weights are the same)"
    )


def detect_format(directory: str | Path) -> Format:
    """``"xlt"`` (``xlt_rep.json``), ``"peft-prompt"`` (PEFT prompt tuning) or ``"adapterhub"``; anything else
    raises a :class:`FormatError` saying what was found."""
    directory = Path(directory)
    if (directory / XLT_CONFIG_NAME).is_file():
        return "xlt"
    path = directory / FOREIGN_CONFIG_NAME
    if not path.is_file():
        raise FormatError(
            f"{directory} holds neither {XLT_CONFIG_NAME} (xlt) nor {FOREIGN_CONFIG_NAME} (PEFT, AdapterHub) "
            "(point at the directory a rep or adapter was saved to)"
        )
    data = read_json(path)
    if "peft_type" in data:
        peft_type = data["peft_type"]
        if peft_type == "PROMPT_TUNING":
            return "peft-prompt"
        raise FormatError(
            f"{path} is a PEFT {peft_type} adapter, which xlt does not import yet (xlt imports PEFT "
            "PROMPT_TUNING only; retrain it as an xlt rep)"
        )
    if isinstance(data.get("config"), dict) and ({"model_type", "name", "version"} & set(data)):
        return "adapterhub"
    raise FormatError(
        f"{path} is neither a PEFT config (no 'peft_type') nor an AdapterHub config (no 'config' dict with "
        f"'model_type'/'name'/'version'); keys found: {sorted(data)[:8]}"
    )


def check_weights(directory: str | Path) -> Path:
    """The weights file of whatever rep ``directory`` holds, verified readable and complete without a model
    (what ``xlt inspect`` checks); raises :class:`FormatError` naming what is wrong."""
    from xlt.formats import native

    fmt = detect_format(directory)
    if fmt == "xlt":
        native.check_rep(directory)
        return native.check_weights(directory)
    if fmt == "peft-prompt":
        from xlt.formats.peft import PICKLE_WEIGHTS_NAME, WEIGHTS_NAME
    else:
        from xlt.formats.adapterhub import PICKLE_WEIGHTS_NAME, WEIGHTS_NAME  # type: ignore[assignment]
    return load_tensors(Path(directory), WEIGHTS_NAME, PICKLE_WEIGHTS_NAME)[1]


def import_rep(model: XLTModel, directory: str | Path, **kwargs: Any) -> Representation:
    """Load or import whatever rep ``directory`` holds into ``model`` (see :func:`detect_format`).

    PEFT and AdapterHub files need ``role=`` and ``language=``/``task=``; an xlt rep records its own, so
    those may be given only to assert them (a mismatch raises).
    """
    fmt = detect_format(directory)
    if fmt == "peft-prompt":
        from xlt.formats.peft import import_peft_prompt

        return import_peft_prompt(model, directory, **kwargs)
    if fmt == "adapterhub":
        from xlt.formats.adapterhub import import_adapterhub

        return import_adapterhub(model, directory, **kwargs)
    from xlt.formats.native import load_rep, read_rep_config

    recorded = read_rep_config(directory)
    for key in ("role", "language", "task"):
        wanted = kwargs.pop(key, None)
        if wanted is not None and str(wanted) != str(recorded.get(key)):
            raise XLTError(
                f"{directory} is an xlt rep with {key}={recorded.get(key)!r}, not {wanted!r} (drop {key}= or "
                "load another rep)"
            )
    unknown = sorted(set(kwargs) - {"name", "allow_other_base"})
    if unknown:
        raise XLTError(
            f"import_rep got option(s) {unknown} that an xlt rep does not take (allowed: name, allow_other_base)"
        )
    return load_rep(model, directory, **kwargs)
