"""A deterministic, realistic operation history that fills the feed with N rows.

Mostly new studies (1-4 series of 1-30 instances, each instance its own STOW commit a few
tens of milliseconds apart), interleaved with deletes of instances, series and studies, bulk
updates, and re-stores of deleted instances, all aimed at recent studies as in real use.
Timestamps start at a fixed moment in the past and grow; a delete or bulk update stamps all
its rows alike. Optional realism knobs: sequence gaps before a transaction (`gap_rate`, up
to `max_gap` values), stores whose timestamp was taken before the previous row's insert
(`reorder_rate`, so v2 order differs from v1 order), and lost metadata blobs
(`missing_metadata_rate`). Every draw comes from one `random.Random(seed)`, so the same
options give a byte-identical feed.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bridge.simulator.catalog import Catalog
from bridge.simulator.registry import Study
from bridge.simulator.store import FeedStore
from bridge.simulator.ticks import TICKS_PER_MILLISECOND, TICKS_PER_SECOND, from_parts

BASE_TICKS = from_parts(2024, 1, 1)
_RECENT_STUDIES = 256
_MEAN_OPERATION_GAP = 20 * TICKS_PER_SECOND
_MEAN_INSTANCE_GAP = 40 * TICKS_PER_MILLISECOND


@dataclass(frozen=True, slots=True)
class PopulationOptions:
    entries: int = 0
    seed: int = 0
    gap_rate: float = 0.001
    max_gap: int = 10
    reorder_rate: float = 0.01
    missing_metadata_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gap_rate", "reorder_rate", "missing_metadata_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.entries < 0 or self.max_gap < 1:
            raise ValueError("entries must be >= 0 and max_gap >= 1")


def populate(store: FeedStore, options: PopulationOptions) -> Catalog:
    """Write `options.entries` rows into an empty store; returns the catalog, for live use."""
    catalog = Catalog(store.registry, random.Random(options.seed))
    _History(store, catalog, options).run()
    return catalog


class _History:
    def __init__(self, store: FeedStore, catalog: Catalog, options: PopulationOptions) -> None:
        self.store = store
        self.registry = store.registry
        self.catalog = catalog
        self.rng = catalog.rng
        self.options = options
        self.clock = BASE_TICKS
        self.step = 1
        self.recent: deque[Study] = deque(maxlen=_RECENT_STUDIES)
        self.deleted: deque[list[int]] = deque(maxlen=_RECENT_STUDIES)  # keys of recent deletes
        scopes: list[tuple[Callable[[int], bool], float]] = [
            (self.new_study, 0.70),
            (lambda room: self.delete(room, "instance"), 0.07),
            (lambda room: self.delete(room, "series"), 0.04),
            (lambda room: self.delete(room, "study"), 0.03),
            (self.update, 0.08),
            (self.restore, 0.08),
        ]
        self.operations = [operation for operation, _ in scopes]
        self.weights = [weight for _, weight in scopes]

    def run(self) -> None:
        target = self.options.entries
        while len(self.store) < target:
            room = target - len(self.store)
            operation = self.rng.choices(self.operations, self.weights)[0]
            if not operation(room):
                self.new_study(room)
        rate = self.options.missing_metadata_rate
        if rate:
            self.registry.metadata_missing.update(
                key for key in range(len(self.registry)) if self.rng.random() < rate
            )

    # -- operations: each writes at most `room` rows and says whether it wrote any ----------

    def new_study(self, room: int) -> bool:
        self.advance(_MEAN_OPERATION_GAP)
        partition = self.rng.choice(self.registry.partitions)
        study = self.catalog.study(partition, self.clock)
        self.recent.append(study)
        for _ in range(self.rng.randint(1, 4)):
            series = self.catalog.series(study)
            for _ in range(self.rng.randint(1, 30)):
                if room == 0:
                    return True
                self.store_instance(self.catalog.instance(series))
                room -= 1
        return True

    def delete(self, room: int, level: str) -> bool:
        keys = self.pick_stored(level)
        if not keys or len(keys) > room:
            return False
        self.advance(_MEAN_OPERATION_GAP)
        self.gap()
        self.store.commit(self.store.delete(keys, self.clock))
        self.deleted.append(keys)
        return True

    def update(self, room: int) -> bool:
        keys = self.pick_stored(self.rng.choice(("instance", "series", "study")))
        if not keys or len(keys) > room:
            return False
        self.advance(_MEAN_OPERATION_GAP)
        self.gap()
        self.store.commit(self.store.update(keys, self.clock, self.catalog.patient()))
        return True

    def restore(self, room: int) -> bool:
        """Store again what one recent delete removed (what is still deleted of it)."""
        if not self.deleted:
            return False
        group = self.deleted[self.rng.randrange(len(self.deleted))]
        self.deleted.remove(group)
        keys = [key for key in group if not self.registry.current[key]]
        if not keys:
            return False
        self.advance(_MEAN_OPERATION_GAP)
        for key in keys[:room]:
            self.store_instance(key)
        return True

    # -- helpers -------------------------------------------------------------------------

    def pick_stored(self, level: str) -> list[int]:
        """The stored instances of a random instance, series or study among recent studies."""
        if not self.recent:
            return []
        study = self.rng.choice(self.recent)
        series_keys = [list(series.instances.values()) for series in study.series.values()]
        if level == "study":
            groups = [[key for keys in series_keys for key in keys]]
        elif level == "series":
            groups = series_keys
        else:
            groups = [[key] for keys in series_keys for key in keys]
        current = self.registry.current
        groups = [stored for stored in ([k for k in g if current[k]] for g in groups) if stored]
        return self.rng.choice(groups) if groups else []

    def store_instance(self, key: int) -> None:
        if self.options.reorder_rate and self.rng.random() < self.options.reorder_rate:
            # Taken before the previous row's insert: earlier than that row, later sequence.
            timestamp = self.clock - self.rng.randint(0, self.step - 1) - 1
        else:
            self.advance(_MEAN_INSTANCE_GAP)
            timestamp = self.clock
        self.gap()
        txn = self.store.store(key, timestamp)
        assert txn is not None, "population stores only instances that are not stored"
        self.store.commit(txn)

    def gap(self) -> None:
        """Maybe burn sequence values before the next transaction."""
        if self.options.gap_rate and self.rng.random() < self.options.gap_rate:
            self.store.skip(self.rng.randint(1, self.options.max_gap))

    def advance(self, mean: int) -> None:
        """Move the clock on by an exponential step (whole ticks, so fractions vary)."""
        self.step = 1 + int(self.rng.expovariate(1.0 / mean))
        self.clock += self.step
