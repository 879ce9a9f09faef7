"""Any rep directory, whatever its format: :func:`detect_format` tells xlt's, PEFT's and AdapterHub's apart,
:func:`check_weights` verifies its weights without a model, :func:`import_rep` dispatches to the right reader.

Both PEFT and AdapterHub name their config ``adapter_config.json``; the keys tell them apart: PEFT writes
``peft_type``, AdapterHub writes a nested ``config`` dict beside ``model_type``/``name``/``version``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from xlt.errors import FormatError, XLTError
from xlt.formats import adapterhub, native, peft
from xlt.formats.foreign import FOREIGN_CONFIG_NAME, load_tensors, read_json
from xlt.formats.native import CONFIG_NAME as XLT_CONFIG_NAME

if TYPE_CHECKING:
    from xlt.model import XLTModel
    from xlt.reps.base import Representation

__all__ = ["FOREIGN_CONFIG_NAME", "Format", "check_weights", "detect_format", "import_rep", "read_json"]

Format = Literal["xlt", "peft-prompt", "adapterhub"]


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
    fmt = detect_format(directory)
    if fmt == "xlt":
        native.check_rep(directory)
        return native.check_weights(directory)
    files = peft if fmt == "peft-prompt" else adapterhub
    return load_tensors(Path(directory), files.WEIGHTS_NAME, files.PICKLE_WEIGHTS_NAME)[1]


def import_rep(model: XLTModel, directory: str | Path, **kwargs: Any) -> Representation:
    """Load or import whatever rep ``directory`` holds into ``model`` (see :func:`detect_format`).

    PEFT and AdapterHub files need ``role=`` and ``language=``/``task=``; an xlt rep records its own, so
    those may be given only to assert them (a mismatch raises).
    """
    fmt = detect_format(directory)
    if fmt == "peft-prompt":
        return peft.import_peft_prompt(model, directory, **kwargs)
    if fmt == "adapterhub":
        return adapterhub.import_adapterhub(model, directory, **kwargs)
    recorded = native.read_rep_config(directory)
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
    return native.load_rep(model, directory, **kwargs)
