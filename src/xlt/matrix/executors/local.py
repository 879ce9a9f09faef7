"""``executor: local``: every job in this process, one after another, on the matrix's own model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xlt.matrix.executors.base import Executor, Outcome, Work, execute

if TYPE_CHECKING:
    from xlt.model import XLTModel


@dataclass(frozen=True)
class LocalOptions:
    """``local`` takes no options."""


class LocalExecutor(Executor):
    name = "local"
    remote = False

    def run(self, jobs: Sequence[Work], model: XLTModel) -> Iterator[Outcome]:
        for number, job in enumerate(jobs, 1):
            self.log(f"[{number}/{len(jobs)}] {job.name}")
            yield execute(job, model, self.log, self.board)

    def describe(self) -> str:
        return "local (1 at once, in this process)"
