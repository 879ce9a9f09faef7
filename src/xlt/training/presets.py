"""Training presets. ``paper`` reproduces the settings of Vykopal et al. (NAACL 2025) exactly; ``fast`` is
xlt's default, tuned for quick convergence on small budgets. Both are plain values: print them, override
any field."""

from __future__ import annotations

from typing import Any, Literal

from xlt.errors import XLTError
from xlt.reps.prompt import LANGUAGE_INIT_TEXT

Preset = Literal["paper", "fast"]
Role = Literal["language", "task"]

# The paper's init texts for task prompts ({language}: the source language's English name).
TASK_INIT_TEXTS: dict[str, str] = {
    "qa": "Answer the question in {language} language:",
    "ner": "Identify ner tags (ORG, PER, LOC) in the text in {language}:",
    "nli": ('Select "Yes", "No" or "Maybe" based on the implication of the premise on the hypothesis in {language}:'),
    "checkworthiness": "Determine whether a given claim in {language} is checkworthy:",
}


def preset(name: Preset, role: Role) -> dict[str, Any]:
    """Field values of a run of this role: ``{"train": {...}, "objective": {...}, "prompt": {...}}``.

    ``prompt`` holds only what applies to soft prompts (``num_virtual_tokens``, ``init``); bottleneck defaults
    are the paper's already (``seq_bn``, reduction factor 16, ReLU).
    """
    if name == "paper":
        train: dict[str, Any] = {
            "steps": 100_000 if role == "language" else 50_000,
            "batch_size": 32,
            "gradient_accumulation": 1,
            "defaults": "paper",
            "optimizer": "auto",
            "lr": None,
            "weight_decay": None,
            "warmup_steps": 0,
            "precision": "fp32",
            "eval_every": 1000,
            "checkpoint_every": 1000,
            "early_stopping_patience": None,
            "max_grad_norm": None,
            "seed": 42,
        }
        objective: dict[str, Any] = {"max_length": 256, "noise_density": 0.15, "mean_span": 3.0}
        return {"train": train, "objective": objective, "prompt": {"num_virtual_tokens": 50, "init": "text"}}
    if name == "fast":
        train = {
            "steps": 2000 if role == "language" else 1000,
            "batch_size": 32,
            "defaults": "fast",
            "warmup_steps": 50,
            "eval_every": 250,
            "checkpoint_every": 250,
            "early_stopping_patience": 4,
            "max_grad_norm": 1.0,
        }
        return {"train": train, "objective": {"max_length": 128}, "prompt": {"num_virtual_tokens": 20, "init": "text"}}
    raise XLTError(f"unknown preset {name!r} (use 'paper' or 'fast')")


__all__ = ["LANGUAGE_INIT_TEXT", "TASK_INIT_TEXTS", "preset"]
