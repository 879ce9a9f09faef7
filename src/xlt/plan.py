"""Plans: one explicit, immutable, serialisable value naming the active representations and their order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

from xlt.errors import PlanError, brief

WHAT_A_PLAN_IS = "a plan is a string like 'sk/prompt+nli/bottleneck', a list of rep names, a Plan, or None"


def _names(value: object) -> tuple[Any, ...]:
    """The entries of a plan given as an iterable; anything that is not an ordered collection is refused."""
    if isinstance(value, Mapping):
        raise PlanError(
            f"plan {brief(value)} is a dict; {WHAT_A_PLAN_IS} (use Plan.of(language=..., task=...) for named parts)"
        )
    if isinstance(value, Set):  # a set's order is arbitrary, and a plan's order is its meaning
        raise PlanError(f"plan {brief(value)} is a set, which has no order; {WHAT_A_PLAN_IS}")
    if isinstance(value, bytes | bytearray) or not isinstance(value, Iterable):
        raise PlanError(f"plan {brief(value)} ({type(value).__name__}) is not a plan; {WHAT_A_PLAN_IS}")
    return tuple(value)


@dataclass(frozen=True)
class Plan:
    """The representations active for one input, in order.

    Prompts are concatenated at the input in plan order (``[language prompt ; task prompt ; input]``),
    bottlenecks are stacked in plan order in every block (language first, as MAD-X), LoRA deltas are summed.
    The empty plan is the frozen base model alone.
    """

    reps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Plan("sk/prompt+nli/bottleneck") is the parsed plan, not a tuple of its characters
        reps = Plan.parse(self.reps).reps if isinstance(self.reps, str) else _names(self.reps)
        object.__setattr__(self, "reps", reps)
        for name in reps:
            if not isinstance(name, str) or not name.strip():
                raise PlanError(
                    f"plan entries must be rep names, got {brief(name)} ({type(name).__name__}); each entry is a "
                    "non-empty string naming a rep in the bank, e.g. 'sk/prompt'"
                )
        if len(set(reps)) != len(reps):
            raise PlanError(f"plan {list(reps)} names a rep twice; name each rep once")

    @classmethod
    def of(cls, *, language: str | None = None, task: str | None = None) -> Plan:
        """The paper's composition: the language representation first, then the task representation."""
        for role, name in (("language", language), ("task", task)):
            if name is not None and not isinstance(name, str):
                raise PlanError(f"Plan.of({role}={brief(name)}): {role} must be one rep name (a string) or None")
        return cls(tuple(name for name in (language, task) if name))

    @classmethod
    def parse(cls, text: str) -> Plan:
        """``"sk/prompt+nli/bottleneck"``; ``""`` or ``"base"`` is the empty plan."""
        if not isinstance(text, str):
            raise PlanError(f"Plan.parse takes a string, got {brief(text)} ({type(text).__name__}); {WHAT_A_PLAN_IS}")
        text = text.strip()
        if text in ("", "base"):
            return cls()
        return cls(tuple(part.strip() for part in text.split("+")))

    @classmethod
    def coerce(cls, value: Plan | str | Iterable[str] | None) -> Plan:
        if value is None:
            return cls()
        if isinstance(value, Plan):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls(_names(value))

    def to_dict(self) -> dict[str, Any]:
        return {"reps": list(self.reps)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if not isinstance(data, Mapping) or set(data) != {"reps"}:
            raise PlanError(f"a plan dict has exactly one key 'reps' (a list of rep names), got {brief(data)}")
        if not isinstance(data["reps"], list | tuple):
            raise PlanError(f'a plan dict\'s "reps" is a list of rep names, got {brief(data["reps"])}')
        return cls(tuple(data["reps"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise PlanError(f'plan JSON {brief(text)} does not parse ({exc}); write {{"reps": [...]}}') from None
        return cls.from_dict(data)

    def __str__(self) -> str:
        return "+".join(self.reps) if self.reps else "base"

    def __len__(self) -> int:
        return len(self.reps)
