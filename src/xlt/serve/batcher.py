"""Dynamic micro-batching: inputs of concurrent requests wait together, and a batch is computed when it is full
or its oldest input has waited long enough.

``routed``: a batch takes the oldest inputs of one format (head type and task) whatever their plans; each row
runs under its own plan in one routed forward. ``per-plan``: a batch holds one plan only (the oldest input's),
as servers that multiplex adapters per model batch. ``none``: one input at a time. Inputs of a batch are
sorted by length, so that rows of similar length pad each other."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from itertools import islice
from typing import Any

from xlt.errors import XLTError
from xlt.serve.bank import RepBank
from xlt.serve.catalog import ServeError
from xlt.serve.compute import Item, compute
from xlt.serve.metrics import Metrics

MAX_QUEUED = 100_000  # inputs waiting at once before new requests are told to retry (503)


class Batcher:
    def __init__(
        self, bank: RepBank, metrics: Metrics, *, policy: str, max_batch_size: int, max_wait_ms: float
    ) -> None:
        self.bank, self.metrics, self.policy = bank, metrics, policy
        self.max_batch_size = 1 if policy == "none" else max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.pending: deque[Item] = deque()
        self.arrived = asyncio.Event()
        self.batches = 0
        self.overhead = 0.0  # a forward's fixed cost in tokens (``forward_overhead``), set when the server starts
        self.free_since = 0.0  # when the model finished its last batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in self.pending:
            if not item.future.done():
                item.future.set_exception(ServeError(503, "the server is shutting down; retry on another replica"))
        self.pending.clear()

    def submit(self, items: list[Item]) -> None:
        if len(self.pending) + len(items) > MAX_QUEUED:
            raise ServeError(503, f"{len(self.pending)} inputs are waiting already; retry in a moment")
        self.pending.extend(items)
        self.metrics.queued.set(len(self.pending))
        self.arrived.set()

    def _matches(self, item: Item, oldest: Item) -> bool:
        if item.key != oldest.key:
            return False
        return self.policy != "per-plan" or item.plan == oldest.plan

    async def _run(self) -> None:
        while True:
            if not self.pending:
                self.arrived.clear()
                await self.arrived.wait()
                continue
            oldest = self.pending[0]
            batch = list(islice((i for i in self.pending if self._matches(i, oldest)), self.max_batch_size))
            # Inputs that arrived while the model computed reach the queue over the next few turns of the event
            # loop: a batch waits as long after the model became free as after its oldest input came.
            left = max(oldest.enqueued, self.free_since) + self.max_wait - time.perf_counter()
            if len(batch) < self.max_batch_size and left > 0:
                self.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), left)
                continue
            taken = {id(i) for i in batch}
            self.pending = deque(i for i in self.pending if id(i) not in taken)
            self.metrics.queued.set(len(self.pending))
            await self._compute(batch)

    async def _compute(self, batch: list[Item]) -> None:
        batch = [i for i in batch if not i.future.done()]  # a request that went away needs no answer
        if not batch:
            return
        batch.sort(key=lambda i: i.size)
        start = time.perf_counter()
        for item in batch:
            self.metrics.queue.observe(start - item.enqueued)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.batch_plans.observe(len({i.plan for i in batch}))
        self.batches += 1
        try:
            outputs: list[Any] = await self.bank.on_model(compute, self.bank.model, batch, self.overhead)
        except Exception as exc:
            if len(batch) > 1:  # one input's problem (e.g. too long for the position table) is its own alone
                half = len(batch) // 2
                await self._compute(batch[:half])
                await self._compute(batch[half:])
                return
            if isinstance(exc, XLTError):
                outputs = [ServeError(422, f"this input cannot be computed: {' '.join(str(exc).split())}")]
            else:
                outputs = [ServeError(500, f"computing this input failed ({type(exc).__name__}: {exc})")]
        self.free_since = time.perf_counter()
        self.metrics.compute.observe(self.free_since - start)
        for item, output in zip(batch, outputs, strict=True):
            if item.future.done():
                continue
            if isinstance(output, Exception):
                item.future.set_exception(output)
            else:
                item.future.set_result(output)
