"""Training presets: named sets of training defaults, shipped as commented YAML files in ``xlt/presets/``
(``paper.yaml``, ``fast.yaml``). ``paper`` holds the settings of Vykopal et al. (NAACL 2025); ``fast`` is xlt's
default, tuned for quick convergence on small budgets. Both are plain values: print them, override any field."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Literal

import yaml

from xlt.reps.registry import PRESETS, check_preset

Preset = Literal["paper", "fast"]
Role = Literal["language", "task"]

PRESET_NAMES: tuple[Preset, ...] = PRESETS


def preset_file(name: str) -> Traversable:
    """The shipped YAML file of a preset (its name checked by ``check_preset``)."""
    return files("xlt").joinpath("presets", f"{check_preset(name)}.yaml")


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
    chosen = sections[role]
    return {"train": chosen["train"], "objective": sections["language"]["objective"], "prompt": chosen["prompt"]}


__all__ = ["PRESET_NAMES", "load_preset", "preset", "preset_file"]
