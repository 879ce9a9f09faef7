"""The probe: a task representation that is nothing but its head, on the frozen model's own hidden states.

It is the zero-shot baseline of encoder models, which have no text template to answer with: a linear probe
trained in the source language and read in every target language with no representation changing the model.
Every configuration is compared with it, so a probe with a sequence head is fitted to convergence by default
(``xlt.training.probe_fit``: multinomial logistic regression on the frozen features, its L2 penalty chosen on
the source language's dev set); ``fit="steps"`` trains it with the step loop like any other representation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from xlt.errors import UnsupportedError, XLTError
from xlt.paths import short
from xlt.reps.base import RepBody, RepConfig, check_range
from xlt.reps.context import BuildContext
from xlt.reps.registry import OptimizerDefaults, register_kind

FITS = ("converged", "steps")
# Half-decades from 1e-6 to 10 (sklearn's C grid, as L2 = 1 / (C * n)): on the demo's 955 English examples the
# weakest is C ~ 1000, the strongest a head that barely leaves the class prior.
DEFAULT_L2_GRID: tuple[float, ...] = tuple(float(f"{10 ** (e / 2):.3g}") for e in range(-12, 3))


@dataclass
class ProbeConfig(RepConfig):
    """How the probe's only weights, its task head (``HeadConfig``), are trained.

    Args:
        fit: "converged" (sequence heads): the head's linear layer is the multinomial logistic regression of the
            frozen model's pooled features, fitted by full-batch L-BFGS to convergence for each ``l2_grid``
            value, the one scoring best on the source language's dev set kept (ties: the lower dev log-loss,
            then the stronger penalty).
            "steps": the step loop of every kind (``TrainConfig``). Token and span heads (NER, QA) always
            train with steps.
        l2_grid: L2 penalties on the weights (not the bias) to choose from; the objective is the mean
            cross-entropy plus ``l2 / 2 * ||W||^2``.
        max_iterations: the most L-BFGS iterations for one penalty.
        tolerance: L-BFGS stops when no gradient entry exceeds this (converged).
    """

    kind: ClassVar[str] = "probe"
    fit: Literal["converged", "steps"] = "converged"
    l2_grid: list[float] = field(default_factory=lambda: list(DEFAULT_L2_GRID))
    max_iterations: int = 1000
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise XLTError(
                f"probe option fit={short(self.fit)} is unknown; use 'converged' (logistic regression to "
                "convergence) or 'steps' (the step loop)"
            )
        if isinstance(self.l2_grid, tuple):
            self.l2_grid = list(self.l2_grid)
        super().__post_init__()  # the types, before the values are compared
        if not self.l2_grid:
            raise XLTError("probe option l2_grid is empty; give at least one L2 penalty > 0 (e.g. [0.001, 0.01, 0.1])")
        bad = [value for value in self.l2_grid if not value > 0]
        if bad:
            raise XLTError(f"probe option l2_grid holds {short(bad[0])}; every L2 penalty must be > 0 (e.g. 0.001)")
        check_range("probe", "max_iterations", self.max_iterations, 1)
        check_range("probe", "tolerance", self.tolerance, 0.0, low_open=True)


class Probe(RepBody):
    entry: ClassVar = "none"


def build_probe(config: RepConfig, ctx: BuildContext) -> Probe:
    if not ctx.host.supports_heads:
        raise UnsupportedError(
            f"{ctx.host.name} models take no head, so a probe has nothing to train (their zero-shot baseline is "
            "the frozen model answering the task's template)"
        )
    return Probe()


# A task head alone on the frozen model (the zero-shot baseline of encoders) is a linear model: a larger step
# (fit: steps). Its fit options sit under a matrix config's ``task_training.probe``.
register_kind(
    "probe",
    ProbeConfig,
    build_probe,
    roles=("task",),
    optimizer={"paper": OptimizerDefaults("adamw", 1e-2, 0.0), "fast": OptimizerDefaults("adamw", 1e-2, 0.0)},
    options_key="probe",
)
