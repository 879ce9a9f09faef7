"""Plans: one explicit, immutable, serialisable value naming the active representations and their order."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from xlt.errors import PlanError


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
        reps = Plan.parse(self.reps).reps if isinstance(self.reps, str) else tuple(self.reps)
        object.__setattr__(self, "reps", reps)
        for name in reps:
            if not isinstance(name, str) or not name:
                raise PlanError(f"plan entries must be rep names, got {name!r}")
        if len(set(reps)) != len(reps):
            raise PlanError(f"plan {list(reps)} names a rep twice; name each rep once")

    @classmethod
    def of(cls, *, language: str | None = None, task: str | None = None) -> Plan:
        """The paper's composition: the language representation first, then the task representation."""
        return cls(tuple(name for name in (language, task) if name))

    @classmethod
    def parse(cls, text: str) -> Plan:
        """``"sk/prompt+nli/bottleneck"``; ``""`` or ``"base"`` is the empty plan."""
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
        return cls(tuple(value))

    def to_dict(self) -> dict[str, Any]:
        return {"reps": list(self.reps)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if set(data) != {"reps"}:
            raise PlanError(f"a plan dict has exactly one key 'reps', got {sorted(data)}")
        return cls(tuple(data["reps"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.from_dict(json.loads(text))

    def __str__(self) -> str:
        return "+".join(self.reps) if self.reps else "base"

    def __len__(self) -> int:
        return len(self.reps)
