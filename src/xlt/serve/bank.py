"""The server's representation cache: representations loaded into the model's bank on first use, kept up to a
count and a memory limit, the least recently used evicted first.

Every change to the model (attaching, composing, removing a representation) and every batch runs on one thread,
the model's (``on_model``), in the order they were asked for: a batch never sees the bank change under it, and
an eviction and a reload of the same name cannot overtake each other. Reading a representation from disk (the
slow part) happens on other threads, so a load never holds up batches that do not need it. A representation an
admitted request uses is pinned until its answer is out: it is never evicted under a request."""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from xlt.errors import XLTError
from xlt.formats.native import read_rep
from xlt.model import XLTModel
from xlt.reps.base import Representation
from xlt.serve.catalog import Catalog, Offer, ServeError, clip, read_offer
from xlt.serve.metrics import Metrics

T = TypeVar("T")


def rep_bytes(rep: Representation) -> int:
    return sum(t.numel() * t.element_size() for t in rep.state_dict().values())


class RepBank:
    """Which offered representations are in ``model``'s bank, loaded on demand and evicted by recency."""

    def __init__(
        self, model: XLTModel, catalog: Catalog, metrics: Metrics, *, max_reps: int, max_bytes: float | None
    ) -> None:
        self.model, self.catalog, self.metrics = model, catalog, metrics
        self.max_reps, self.max_bytes = max_reps, max_bytes
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="xlt-model")
        self.resident: OrderedDict[str, int] = OrderedDict()  # name -> bytes, least recently used first
        self.pins: Counter[str] = Counter()
        self.loading: dict[str, asyncio.Future[None]] = {}
        self._background: set[asyncio.Future[None]] = set()

    async def on_model(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the model's thread, after whatever was asked of the model before."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # ---- admission -----------------------------------------------------------------------------------
    async def acquire(self, names: Iterable[str]) -> list[str]:
        """Load what is missing of ``names`` and pin them all; the caller must ``release`` them. A load that
        fails unpins them and raises its ``ServeError``."""
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            self.catalog.offer(name)
        for name in wanted:
            self.pins[name] += 1
        try:
            await asyncio.gather(*(self._ensure(name) for name in wanted))
        except BaseException:
            self.release(wanted)
            raise
        for name in wanted:
            if name in self.resident:
                self.resident.move_to_end(name)
        return wanted

    def release(self, names: Iterable[str]) -> None:
        for name in names:
            self.pins[name] -= 1
            if self.pins[name] <= 0:
                del self.pins[name]
        if self._over():
            self._background.add(task := asyncio.ensure_future(self._evict()))
            task.add_done_callback(self._background.discard)

    async def load(self, names: Iterable[str]) -> list[str]:
        """Make ``names`` resident (they stay until evicted by the cache's limits or unloaded)."""
        wanted = await self.acquire(names)
        self.release(wanted)
        return wanted

    async def unload(self, name: str) -> bool:
        """Take ``name`` out of the bank; False when it was not resident; 409 while a request uses it."""
        self.catalog.offer(name)
        if self.pins.get(name) or name in self.loading:
            raise ServeError(409, f"representation '{name}' is in use by a request being served; retry when it is done")
        if name not in self.resident:
            return False
        self.resident.pop(name)
        await self.on_model(self._remove, name)
        self._gauges()
        return True

    # ---- loading -------------------------------------------------------------------------------------
    async def _ensure(self, name: str) -> None:
        if name in self.resident:
            return
        pending = self.loading.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._load(self.catalog.offer(name)))
            self.loading[name] = pending
            pending.add_done_callback(lambda _: self.loading.pop(name, None))
        await asyncio.shield(pending)  # a request that goes away does not cancel a load others wait for

    async def _load(self, offer: Offer) -> None:
        if offer.composed:
            members = [name for name, _ in offer.members]
            await self.acquire(members)
            try:
                size = await self.on_model(self._compose, offer)
            finally:
                self.release(members)
        else:
            rep = await asyncio.to_thread(self._read, offer)
            size = rep_bytes(rep)
            await self.on_model(self._attach, rep)
        self.resident[offer.name] = size
        self.metrics.loads.inc()
        self._gauges()
        if self._over():
            await self._evict()

    def _read(self, offer: Offer) -> Representation:
        try:
            read_offer(offer.directory, offer.root)  # the files are still inside the offered directory
            return read_rep(self.model, offer.directory, name=offer.name)
        except ServeError:
            self.metrics.load_failures.inc()
            raise
        except (XLTError, OSError) as exc:
            self.metrics.load_failures.inc()
            # the reason, with the offered directory named as the client knows it (never the server's own paths)
            why = str(exc).replace(str(offer.root), offer.root.name)
            raise ServeError(422, f"representation '{offer.name}' cannot be loaded: {clip(why, 400)}") from None

    def _attach(self, rep: Representation) -> None:
        if rep.name in self.model.reps:
            self.model.remove(rep.name)
        self.model.attach(rep)

    def _compose(self, offer: Offer) -> int:
        if offer.name in self.model.reps:
            self.model.remove(offer.name)
        try:
            rep = self.model.compose(offer.name, dict(offer.members), language=offer.language)
        except XLTError as exc:
            raise ServeError(422, f"representation '{offer.name}' cannot be composed: {exc}") from None
        return rep_bytes(rep)

    def _remove(self, name: str) -> None:
        if name in self.model.reps:
            self.model.remove(name)

    # ---- eviction ------------------------------------------------------------------------------------
    def _over(self) -> bool:
        over_bytes = self.max_bytes is not None and sum(self.resident.values()) > self.max_bytes
        return len(self.resident) > self.max_reps or over_bytes

    async def _evict(self) -> None:
        """Evict least recently used, unpinned representations until the cache is within its limits (pinned
        ones may keep it above them until their requests are answered)."""
        while self._over():
            victim = next((n for n in self.resident if not self.pins.get(n) and n not in self.loading), None)
            if victim is None:
                return
            self.resident.pop(victim)
            self.metrics.evictions.inc()
            await self.on_model(self._remove, victim)
        self._gauges()

    def _gauges(self) -> None:
        self.metrics.resident.set(len(self.resident))
        self.metrics.resident_bytes.set(sum(self.resident.values()))

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": name, "bytes": size, "in_use": self.pins.get(name, 0)} for name, size in self.resident.items()]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
