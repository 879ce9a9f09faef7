"""Per-row plans in one batch. Rows that share a representation are computed together, never one by one."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from xlt.errors import PlanError
from xlt.plan import Plan
from xlt.reps.base import Representation

Rows = torch.Tensor | None  # row indices into the batch; None: every row
M = TypeVar("M")
R = TypeVar("R")


def gather_groups(entries: Sequence[tuple[M, R]], signature: Callable[[M], Hashable | None]) -> list[list[tuple[M, R]]]:
    """``(module, rows)`` entries grouped by ``signature``: modules of one group can run as one gathered product
    over their rows. A module whose signature is None (dropout in play, say) is a group of its own."""
    groups: dict[Hashable, list[tuple[M, R]]] = {}
    for entry in entries:
        key = signature(entry[0])
        groups.setdefault(key if key is not None else ("alone", id(entry[0])), []).append(entry)
    return list(groups.values())


@dataclass(frozen=True)
class ResolvedPlan:
    """A plan checked against a model: its representations, in plan order."""

    plan: Plan
    reps: tuple[Representation, ...]

    def by_entry(self, entry: str) -> tuple[Representation, ...]:
        return tuple(rep for rep in self.reps if rep.entry == entry)

    @property
    def head(self) -> Representation | None:
        heads = [rep for rep in self.reps if rep.head is not None]
        return heads[0] if heads else None


def resolve(plan: Plan, bank: Mapping[str, Representation]) -> ResolvedPlan:
    """Validate a plan against the model's reps; every problem is one clear error before any compute."""
    missing = [name for name in plan.reps if name not in bank]
    if missing:
        known = ", ".join(sorted(bank)) or "none"
        raise PlanError(
            f"plan '{plan}' names unknown rep(s) {missing} (this model has: {known}; add or load them first)"
        )
    reps = tuple(bank[name] for name in plan.reps)
    coupled = [rep.name for rep in reps if getattr(rep.body, "invertible", None) is not None]
    if len(coupled) > 1:
        raise PlanError(
            f"plan '{plan}' has two invertible adapters ({', '.join(coupled)}); only one can couple the embeddings "
            "(train the other without invertible=)"
        )
    heads = [rep.name for rep in reps if rep.head is not None]
    if len(heads) > 1:
        raise PlanError(f"plan '{plan}' has two heads ({', '.join(heads)}); a plan may hold at most one head")
    return ResolvedPlan(plan, reps)


@dataclass
class _RowsByRep:
    """The rows (in batch order) that use each representation, per entry, gathered one plan at a time."""

    prompts: dict[tuple[str, ...], list[int]] = field(default_factory=dict)  # keyed by the plan's prompt names
    prompt_reps: dict[tuple[str, ...], tuple[Representation, ...]] = field(default_factory=dict)
    stacks: list[dict[str, list[int]]] = field(default_factory=list)  # one per stacking depth
    loras: dict[str, list[int]] = field(default_factory=dict)
    heads: dict[str, list[int]] = field(default_factory=dict)
    invertible: dict[str, list[int]] = field(default_factory=dict)

    def add(self, resolved: ResolvedPlan, rows: list[int]) -> None:
        prompts = resolved.by_entry("input")
        if prompts:
            key = tuple(rep.name for rep in prompts)
            self.prompts.setdefault(key, []).extend(rows)
            self.prompt_reps[key] = prompts
        blocks = resolved.by_entry("blocks")
        for depth, rep in enumerate(blocks):
            while len(self.stacks) <= depth:
                self.stacks.append({})
            self.stacks[depth].setdefault(rep.name, []).extend(rows)
        coupled = [rep for rep in blocks if getattr(rep.body, "invertible", None) is not None]
        if coupled:  # as AdapterHub's Stack: the first invertible adapter of the plan
            self.invertible.setdefault(coupled[0].name, []).extend(rows)
        for rep in resolved.by_entry("linears"):
            self.loras.setdefault(rep.name, []).extend(rows)
        head = resolved.head
        if head is not None:
            self.heads.setdefault(head.name, []).extend(rows)


def _plans_and_rows(plans: Sequence[ResolvedPlan]) -> list[tuple[ResolvedPlan, list[int]]]:
    """Each distinct plan once, in order of first use, with the rows that use it."""
    by_plan: dict[Plan, list[int]] = {}
    for row, resolved in enumerate(plans):
        by_plan.setdefault(resolved.plan, []).append(row)
    last = {resolved.plan: resolved for resolved in plans}
    return [(last[plan], rows) for plan, rows in by_plan.items()]


def _disjoint_layers(rows_by_name: Mapping[str, list[int]]) -> list[list[str]]:
    """Names grouped so that the rows within a group are disjoint, each name in the first group it fits."""
    layers: list[tuple[set[int], list[str]]] = []
    for name, rows in rows_by_name.items():
        taken = set(rows)
        for used, names in layers:
            if not used & taken:
                used |= taken
                names.append(name)
                break
        else:
            layers.append((taken, [name]))
    return [names for _, names in layers]


class Route:
    """The grouping of a batch's rows by representation, computed once per forward or generate call."""

    def __init__(self, plans: Sequence[ResolvedPlan], device: torch.device) -> None:
        if not plans:
            raise PlanError("a routed batch needs one plan per row; got none")
        self.plans = list(plans)
        self.batch_size = len(plans)
        self.device = device
        self._expanded: dict[tuple[int, int], torch.Tensor] = {}
        self._gathers: dict[tuple[tuple[int, ...], int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.reps: dict[str, Representation] = {}
        used = _RowsByRep()
        for resolved, rows in _plans_and_rows(plans):
            self.reps.update((rep.name, rep) for rep in resolved.reps)
            used.add(resolved, rows)
        self.headless_rows = self.batch_size - sum(len(r) for r in used.heads.values())
        self.prompt_groups = [(used.prompt_reps[key], self._rows(rows)) for key, rows in used.prompts.items()]
        self.stack = [self._groups(depth) for depth in used.stacks]
        self.loras = self._groups(used.loras)
        # LoRA groups with disjoint rows, which one gathered product can serve (a row's deltas add up in any order)
        self.lora_layers = [self._groups({n: used.loras[n] for n in names}) for names in _disjoint_layers(used.loras)]
        self.heads = self._groups(used.heads)
        self.invertible = self._groups(used.invertible)

    def _groups(self, rows_by_name: Mapping[str, list[int]]) -> list[tuple[Representation, Rows]]:
        return [(self.reps[name], self._rows(rows)) for name, rows in rows_by_name.items()]

    def _rows(self, rows: list[int]) -> Rows:
        if len(rows) == self.batch_size:
            return None
        return torch.tensor(sorted(rows), dtype=torch.long, device=self.device)

    def partition(
        self, entries: Sequence[tuple[M, Rows]], signature: Callable[[M], Hashable | None], x: torch.Tensor
    ) -> tuple[list[tuple[list[M], torch.Tensor, torch.Tensor]], list[tuple[M, Rows]]]:
        """Split ``(module, rows)`` entries of disjoint rows, for input ``x`` (rows, tokens, dim), into gathered
        groups ``(modules, index, which)`` (see :meth:`gather_index`) and the entries that run alone."""
        gathered, alone = [], []
        for group in gather_groups(entries, signature) if x.dim() == 3 else [[entry] for entry in entries]:
            if len(group) == 1:
                alone += group
            else:
                # rows of a group of two or more are never None (None is every row: a group of its own)
                index, which = self.gather_index([rows for _, rows in group if rows is not None], x.shape[0])
                gathered.append(([module for module, _ in group], index, which))
        return gathered, alone

    def gather_index(self, groups: Sequence[torch.Tensor], batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index, which)`` for groups of disjoint rows: the rows of all groups in one index, and for each
        of them the position of its group."""
        key = (tuple(id(rows) for rows in groups), batch)
        if key not in self._gathers:
            expanded = [self.expand(rows, batch) for rows in groups]
            which = [torch.full_like(rows, i) for i, rows in enumerate(expanded)]
            self._gathers[key] = (torch.cat(expanded), torch.cat(which))
        return self._gathers[key]

    def expand(self, rows: torch.Tensor, batch: int) -> torch.Tensor:
        """Map rows to a batch of ``batch`` rows: generation repeats each row (beams, samples) in place."""
        if batch == self.batch_size:
            return rows
        if batch % self.batch_size:
            raise PlanError(
                f"routed batch of {self.batch_size} rows met a tensor of batch {batch}; pass one plan per input row"
            )
        factor = batch // self.batch_size
        key = (id(rows), factor)
        if key not in self._expanded:
            offsets = torch.arange(factor, device=rows.device)
            self._expanded[key] = (rows.unsqueeze(1) * factor + offsets).reshape(-1)
        return self._expanded[key]
