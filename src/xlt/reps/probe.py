"""The probe: a task representation that is nothing but its head, on the frozen model's own hidden states.

It is the zero-shot baseline of encoder models, which have no text template to answer with: a linear probe
trained in the source language and read in every target language with no representation changing the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xlt.errors import UnsupportedError
from xlt.reps.base import RepBody, RepConfig
from xlt.reps.context import BuildContext
from xlt.reps.registry import OptimizerDefaults, register_kind


@dataclass
class ProbeConfig(RepConfig):
    """No options: the probe's only weights are its task head (``HeadConfig``)."""

    kind: ClassVar[str] = "probe"


class Probe(RepBody):
    entry: ClassVar = "none"


def build_probe(config: RepConfig, ctx: BuildContext) -> Probe:
    if not ctx.host.supports_heads:
        raise UnsupportedError(
            f"{ctx.host.name} models take no head, so a probe has nothing to train (their zero-shot baseline is "
            "the frozen model answering the task's template)"
        )
    return Probe()


# A task head alone on the frozen model (the zero-shot baseline of encoders) is a linear model: a larger step.
register_kind(
    "probe",
    ProbeConfig,
    build_probe,
    roles=("task",),
    optimizer={"paper": OptimizerDefaults("adamw", 1e-2, 0.0), "fast": OptimizerDefaults("adamw", 1e-2, 0.0)},
    options_key=None,
)
