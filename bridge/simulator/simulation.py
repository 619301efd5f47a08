"""One simulated DICOM service: its feed table, renderer, catalog and in-flight writes.

`POST /_sim/reset` swaps in a new `Simulation`, so everything a reset must discard lives
here. In-flight transactions (docs/changefeed.md, "Order, windows and consistency") hold
their rows invisible until a timer or `POST /_sim/commit` commits them; readers that must
wait for one (a v1 window covering it, HOLDLOCK) await `changed()`, which wakes them after
every commit or rollback.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bridge.simulator.faults import Faults
from bridge.simulator.metadata import MetadataTemplate
from bridge.simulator.population import PopulationOptions, populate
from bridge.simulator.registry import DEFAULT_PARTITION, Registry
from bridge.simulator.render import Renderer
from bridge.simulator.rowcache import DEFAULT_CAPACITY, RowCache
from bridge.simulator.stats import Stats
from bridge.simulator.store import FeedStore, Transaction


@dataclass(frozen=True, slots=True)
class FeedOptions:
    partitions: int = 1  # Microsoft.Default plus partition-1 ... partition-(n-1)
    file_path: bool = False  # the external store: entries carry filePath
    metadata_size: int = 0  # approximate bytes of each instance's DICOM JSON
    row_cache: int = DEFAULT_CAPACITY  # serialized rows kept in memory

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.metadata_size < 0 or self.row_cache < 1:
            raise ValueError("partitions and row_cache must be >= 1, metadata_size >= 0")

    @property
    def partition_names(self) -> list[str]:
        return [DEFAULT_PARTITION] + [f"partition-{n}" for n in range(1, self.partitions)]


class Simulation:
    def __init__(self, feed: FeedOptions, population: PopulationOptions) -> None:
        self.feed = feed
        self.population = population
        self.store = FeedStore(Registry(feed.partition_names), RowCache(feed.row_cache))
        self.catalog = populate(self.store, population)
        self.renderer = Renderer(self.store, MetadataTemplate(feed.metadata_size), feed.file_path)
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._changed = asyncio.Event()
        self.closed = False

    def apply(self, txn: Transaction, in_flight_ms: float = 0.0, hold: bool = False) -> None:
        """Commit now, or leave in flight: for `in_flight_ms`, or until `commit` if `hold`."""
        if hold:
            return
        if in_flight_ms <= 0:
            self.store.commit(txn)
            return
        loop = asyncio.get_running_loop()
        self._timers[txn.id] = loop.call_later(in_flight_ms / 1000.0, self.commit, txn.id)

    def commit(self, txn_id: int) -> None:
        """Make an in-flight transaction visible; KeyError if there is none by that id."""
        self.store.commit(self._take(txn_id))
        self._notify()

    def rollback(self, txn_id: int) -> None:
        """Abort an in-flight transaction: its sequence numbers are burnt, a gap remains."""
        self.store.abort(self._take(txn_id))
        self._notify()

    async def changed(self) -> None:
        await self._changed.wait()

    def close(self) -> None:
        """Stop the timers and wake every waiting reader: after a reset they carry on with
        the new simulation, at shutdown they give up."""
        self.closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._notify()

    def _take(self, txn_id: int) -> Transaction:
        txn = self.store.pending[txn_id]
        timer = self._timers.pop(txn_id, None)
        if timer is not None:
            timer.cancel()
        return txn

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


@dataclass(slots=True)
class Service:
    """What the ASGI app serves; a reset replaces `sim`, faults and stats live on."""

    sim: Simulation
    faults: Faults
    stats: Stats
