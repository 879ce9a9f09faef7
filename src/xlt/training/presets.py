"""Training presets: named sets of training defaults, shipped as commented YAML files in ``xlt/presets/``
(``paper.yaml``, ``fast.yaml``). ``paper`` holds the settings of Vykopal et al. (NAACL 2025); ``fast`` is xlt's
default, tuned for quick convergence on small budgets. Both are plain values: print them, override any field."""

from __future__ import annotations

from dataclasses import fields
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml

from xlt.errors import XLTError
from xlt.reps.registry import PRESETS, check_preset

Preset = Literal["paper", "fast"]
Role = Literal["language", "task"]
ROLES: tuple[Role, ...] = ("language", "task")

PRESET_NAMES: tuple[Preset, ...] = PRESETS


def preset_file(name: str) -> Traversable | Path:
    """The YAML file of a preset: a shipped one by name (checked by ``check_preset``), or, for a name ending in
    .yaml or .yml, the user's own file of the same shape (a copy of a shipped one, edited)."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise XLTError(f"preset file {name} does not exist; give a preset name ('paper' or 'fast') or a file")
        return path
    return files("xlt").joinpath("presets", f"{check_preset(name)}.yaml")


def is_preset(data: Any) -> bool:
    """Whether a YAML document is a preset (``language:`` and ``task:`` sections) rather than a run's options."""
    return (
        isinstance(data, dict)
        and bool(data)
        and set(data) <= set(ROLES)
        and all(isinstance(section, dict) for section in data.values())
    )


def load_preset(name: str) -> dict[str, dict[str, Any]]:
    """A preset's sections as its file writes them: ``{"language": {...}, "task": {...}}``."""
    return yaml.safe_load(preset_file(name).read_text(encoding="utf-8"))


def preset(name: Preset, role: Role) -> dict[str, Any]:
    """Field values of a run of this role: ``{"train": {...}, "objective": {...}, "prompt": {...}}``.

    ``objective`` is the language-modelling objective, the language section's for both roles (task runs train
    none). ``prompt`` holds only what applies to soft prompts (``num_virtual_tokens``, ``init``); bottleneck
    defaults are the paper's already (``seq_bn``, reduction factor 16, ReLU).
    """
    sections = load_preset(name)
    try:
        chosen = sections[role]
        values = {"train": chosen["train"], "objective": sections["language"]["objective"], "prompt": chosen["prompt"]}
    except (KeyError, TypeError):
        raise XLTError(
            f"preset {name} lacks a section: a preset has language: (train:, objective:, prompt:) and task: "
            "(train:, prompt:), as xlt/presets/fast.yaml"
        ) from None
    _check_values(name, role, values)
    return values


def _check_values(name: str, role: str, values: dict[str, Any]) -> None:
    """Each section builds the dataclass it configures, so an edited preset's typo is one error naming it."""
    from xlt.reps.prompt import PromptConfig
    from xlt.training.lm_objective import ObjectiveConfig
    from xlt.training.loop import TrainConfig

    for section, cls in (("train", TrainConfig), ("objective", ObjectiveConfig), ("prompt", PromptConfig)):
        given = values[section]
        where = f"preset {name}: {role}.{section}" if section != "objective" else f"preset {name}: language.objective"
        if not isinstance(given, dict):
            raise XLTError(f"{where} must be a mapping of {cls.__name__} fields, got {given!r}")
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise XLTError(f"{where}: unknown key(s) {unknown} (see xlt/presets/fast.yaml)")
        try:
            cls(**given)
        except (TypeError, ValueError, XLTError) as exc:
            raise XLTError(f"{where}: {exc}") from None


__all__ = ["PRESET_NAMES", "is_preset", "load_preset", "preset", "preset_file"]
