"""Configurations: the paper's seven recipes (and users' own), each a rule from (task, source, target) to the
plan a task representation is trained with and the plan it is tested with.

The rule is one function for both plans (``plan(language, task_rep)``), called with the source language at
training time and the target language at test time: the composition cannot differ between the two (the
reference code trained SLP+TP on ``[LP ; LP ; TP ; x]`` and tested on ``[LP ; TP ; x]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xlt.errors import XLTError
from xlt.paths import short
from xlt.plan import Plan
from xlt.reps.registry import kinds

if TYPE_CHECKING:
    from xlt.hosts.base import Host


OPTIONS: tuple[str, ...] = ("cycle", "compose", "align", "ensemble")  # the flags beyond the paper's recipes


@dataclass(frozen=True)
class Configuration:
    """A named recipe.

    Args:
        name: its name in tables (e.g. "SLP+TA").
        language: kind of the language representation (None: no language representation).
        task: kind of the task representation; "probe" is the zero-shot baseline: an encoder's head alone on the
            frozen model, and nothing at all on families that answer in text (the base model with the task's
            template).
        cycle: train the task representation while the language slot cycles through every language
            representation of the matrix (source and targets, one per training row), instead of the source's
            alone, so that it learns to work with whichever one it meets at test time. Development data (best
            checkpoint) and testing keep ``[language ; task]`` with the source's and the target's.
        compose: test a target with no language representation of its own: its language slot holds the
            average of the other languages' representations (``XLTModel.compose``), uniform over those that
            share the target's script (over all of them where none does). The target's own representation, and
            so its corpus, is never used; the task representation is the one the configuration without
            ``compose`` trains (``trains_with``), shared with it.
        align: test a target with its language representation aligned with parallel text
            (``xlt.training.alignment``): trained like the target's own, on its corpus, and pulled towards the
            source's representation of the same strings under the source's language representation (the one the
            task representation was trained with). The task representation is the paper twin's (``trains_with``);
            the source itself is tested with its own language representation.
        ensemble: test a target with no language representation of its own at the output: the task
            representation runs with each related language's representation in turn (the languages ``compose``
            would average), and their predicted distributions are mixed per example with weights that minimise
            the mixture's entropy (``xlt.training.ensemble``). Heads only (classes or tags); the task
            representation is the paper twin's.
    """

    name: str
    language: str | None
    task: str
    cycle: bool = False
    compose: bool = False
    align: bool = False
    ensemble: bool = False

    def __post_init__(self) -> None:
        if self.language is not None and self.language not in kinds("language"):
            raise XLTError(
                f"configuration '{self.name}': language kind {short(self.language)} is not one of "
                f"{', '.join(kinds('language'))} (or null for none)"
            )
        if self.task not in kinds("task"):
            raise XLTError(
                f"configuration '{self.name}': task kind {short(self.task)} is not one of {', '.join(kinds('task'))}"
            )
        if self.task == "probe" and self.language is not None:
            raise XLTError(f"configuration '{self.name}': a probe (zero-shot) takes no language representation")
        for option in OPTIONS:
            if getattr(self, option) and self.language is None:
                raise XLTError(
                    f"configuration '{self.name}': {option}: true needs a language kind (it works on language "
                    "representations)"
                )
        if self.cycle and self.compose:
            raise XLTError(
                f"configuration '{self.name}': cycle and compose exclude each other (a cycled task representation "
                "is trained with the target's own language representation, which compose withholds)"
            )
        if self.align and (self.cycle or self.compose):
            raise XLTError(
                f"configuration '{self.name}': align takes neither cycle nor compose (it tests the paper's task "
                "representation with each target's aligned language representation)"
            )
        if self.ensemble and (self.cycle or self.compose or self.align):
            raise XLTError(
                f"configuration '{self.name}': ensemble takes none of cycle, compose and align (it tests the paper's "
                "task representation with other languages' representations, mixing their outputs)"
            )

    @property
    def without_own(self) -> bool:
        """Whether a target is tested without its own language representation (from the grid's other languages':
        ``compose`` and ``ensemble``), so that its cells depend on every grid language's."""
        return self.compose or self.ensemble

    @property
    def slug(self) -> str:
        """A name fit for rep names and directories ("LA+TA" -> "la-ta")."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "configuration"

    def trains_task(self, host: Host | type[Host]) -> bool:
        """Whether a task representation is trained at all: a probe is a head, so on a family that answers in
        text (no heads) the zero-shot baseline trains nothing."""
        return not (self.task == "probe" and not host.supports_heads)

    @property
    def trains_with(self) -> Configuration:
        """The configuration whose task representation this one tests: itself, or for ``compose``, ``align`` and
        ``ensemble`` the paper's configuration of the same kinds where there is one (the same training, so trained
        once)."""
        if self.compose or self.align or self.ensemble:
            for paper in PAPER_CONFIGURATIONS:
                if (paper.language, paper.task) == (self.language, self.task):
                    return paper
        return self

    def language_rep(self, language: str) -> str | None:
        return f"{language}/{self.language}" if self.language else None

    def test_language_rep(self, language: str, source: str | None = None) -> str | None:
        """The language slot at test time: the target's own representation, the one composed for it, or (for
        ``align``, a target other than the source) its representation aligned with the source's."""
        own = self.language_rep(language)
        if own is not None and self.compose:
            return f"{own}-composed"
        if own is not None and self.ensemble:
            return f"{own}-ensemble"  # no representation of that name: the cell's record names its members
        if own is not None and self.align and source is not None and language != source:
            return self.aligned_rep(language, source)
        return own

    def aligned_rep(self, language: str, source: str) -> str:
        """The name of ``language``'s representation aligned with ``source``'s."""
        return f"{language}/{self.language}-aligned-{source}"

    def task_rep(self, task: str, source: str, seed: int) -> str:
        return f"{task}/{source}/{self.trains_with.slug}/seed{seed}"

    def plan(self, language: str, task_rep: str | None) -> Plan:
        """``[language ; task]``: with the source language for training, the target language for testing."""
        return Plan.of(language=self.language_rep(language), task=task_rep)

    def test_plan(self, language: str, task_rep: str | None, source: str | None = None) -> Plan:
        """The plan a target is tested with: ``plan``, with the composed or aligned representation for
        ``compose`` and ``align``."""
        return Plan.of(language=self.test_language_rep(language, source), task=task_rep)


PAPER_CONFIGURATIONS: tuple[Configuration, ...] = (
    Configuration("zero-shot", None, "probe"),
    Configuration("TA", None, "bottleneck"),
    Configuration("TP", None, "prompt"),
    Configuration("LA+TA", "bottleneck", "bottleneck"),
    Configuration("LA+TP", "bottleneck", "prompt"),
    Configuration("SLP+TA", "prompt", "bottleneck"),
    Configuration("SLP+TP", "prompt", "prompt"),
)
PAPER_NAMES: tuple[str, ...] = tuple(c.name for c in PAPER_CONFIGURATIONS)

# Beyond the paper: the paper's configurations with a language representation, their task representation
# trained target-language-ready (``cycle``). Named by matrices like the paper's seven; not run by default.
CYCLED_CONFIGURATIONS: tuple[Configuration, ...] = tuple(
    Configuration(f"{c.name}-cyc", c.language, c.task, cycle=True) for c in PAPER_CONFIGURATIONS if c.language
)
# Beyond the paper: languages without a corpus, their language representation composed from the others'.
COMPOSED_CONFIGURATIONS: tuple[Configuration, ...] = tuple(
    Configuration(f"{c.name}-avg", c.language, c.task, compose=True) for c in PAPER_CONFIGURATIONS if c.language
)
# Beyond the paper: each target's language representation aligned with the source's on parallel text.
ALIGNED_CONFIGURATIONS: tuple[Configuration, ...] = tuple(
    Configuration(f"{c.name}-align", c.language, c.task, align=True) for c in PAPER_CONFIGURATIONS if c.language
)
# Beyond the paper: languages without a corpus, the outputs of the others' representations mixed per example.
ENSEMBLE_CONFIGURATIONS: tuple[Configuration, ...] = tuple(
    Configuration(f"{c.name}-ens", c.language, c.task, ensemble=True) for c in PAPER_CONFIGURATIONS if c.language
)
BUILTIN_CONFIGURATIONS: tuple[Configuration, ...] = (
    *PAPER_CONFIGURATIONS,
    *CYCLED_CONFIGURATIONS,
    *COMPOSED_CONFIGURATIONS,
    *ALIGNED_CONFIGURATIONS,
    *ENSEMBLE_CONFIGURATIONS,
)
BUILTIN_NAMES: tuple[str, ...] = tuple(c.name for c in BUILTIN_CONFIGURATIONS)


def resolve_configurations(names: list[str], custom: dict[str, dict[str, str | None]]) -> list[Configuration]:
    """The configurations a grid names: the built-in ones (``BUILTIN_CONFIGURATIONS``) by name,
    and the config's own ``custom_configurations``."""
    known = {c.name: c for c in BUILTIN_CONFIGURATIONS}
    for name, spec in custom.items():
        if name in known:
            raise XLTError(f"custom_configurations.{name}: the name is a built-in configuration's; choose another")
        options = OPTIONS
        if (
            not isinstance(spec, dict)
            or set(spec) - {"language", "task", *options}
            or "task" not in spec
            or any(not isinstance(spec.get(option, False), bool) for option in options)
        ):
            raise XLTError(
                f"custom_configurations.{name} must be a mapping with task: (one of {', '.join(kinds('task'))}), "
                f"optionally language: (one of {', '.join(kinds('language'))}), cycle:, compose:, align: and "
                "ensemble: true|false"
            )
        known[name] = Configuration(
            name,
            spec.get("language"),
            str(spec["task"]),
            **{option: bool(spec.get(option)) for option in OPTIONS},
        )
    out = []
    for name in names:
        if name not in known:
            raise XLTError(f"configurations: unknown configuration '{name}' (allowed: {', '.join(known)})")
        out.append(known[name])
    slugs = [c.slug for c in out]
    # A composed configuration tests its twin's task representation, found by slug: a slug must name one training.
    trainings: dict[str, set[tuple[str | None, str, bool]]] = {}
    for c in out:
        t = c.trains_with
        trainings.setdefault(t.slug, set()).add((t.language, t.task, t.cycle))
    if len(set(slugs)) != len(slugs) or any(len(v) > 1 for v in trainings.values()):
        raise XLTError(f"configurations: names {names} collide once made file-safe ({slugs}); rename one")
    return out
