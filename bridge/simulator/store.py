"""The change-feed table and the operations that write it (docs/changefeed.md: "Entries",
"Order, windows and consistency").

Rows are parallel arrays indexed by row number, allocated in sequence order. Like the SQL
table, a row stores its original watermark; the current watermark is the instance's (every
operation sets it on all rows of the SOP at once), so the state is derived when read:
no current watermark -> Deleted, a different one -> Replaced, the same -> Current.

Every operation returns a `Transaction`: its rows already hold their sequence numbers and
timestamps, but nothing is visible and no watermark moves until `commit`, which is how
in-flight writes are simulated; `abort` burns the sequence numbers like a rollback. The
instances a transaction touches are locked until then (a second writer gets `Conflict`).

Each row has a slot in `cache` for its serialized form, filled by the renderer and cleared
here for exactly the rows of an instance whose watermark changes.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from bridge.simulator.registry import NotFound, Patient, Registry
from bridge.simulator.rowcache import RowCache


class Action(IntEnum):
    CREATE = 0
    DELETE = 1
    UPDATE = 2


class State(IntEnum):
    CURRENT = 0
    REPLACED = 1
    DELETED = 2


PENDING, COMMITTED, ABORTED = 0, 1, 2


class Conflict(Exception):
    """An instance is locked by a transaction still in flight."""


class _Keep(Enum):
    """Leave the instance's bulk-update override as it is (a sentinel checkers can narrow)."""

    KEEP = 0


_KEEP = _Keep.KEEP


@dataclass(slots=True)
class Transaction:
    id: int
    rows: list[int] = field(default_factory=list)
    # (instance key, new current watermark or 0, new PatientName/ID override, None or _KEEP)
    effects: list[tuple[int, int, Patient | _Keep | None]] = field(default_factory=list)

    @property
    def keys(self) -> list[int]:
        return [key for key, _, _ in self.effects]


class FeedStore:
    def __init__(self, registry: Registry, cache: RowCache | None = None) -> None:
        self.registry = registry
        self.cache = cache if cache is not None else RowCache()
        self.sequence = array("q")
        self.timestamp = array("q")
        self.action = bytearray()
        self.key = array("q")
        self.original = array("q")  # OriginalWatermark
        self.previous = array("q")  # previous row of the same instance, -1 for none
        self.status = bytearray()
        self.time_order = array("q")  # committed rows by (timestamp, sequence)
        self.pending: dict[int, Transaction] = {}
        self._next_sequence = 1
        self._next_transaction = 1

    def __len__(self) -> int:
        return len(self.sequence)

    # -- sequence allocation -------------------------------------------------------------

    @property
    def next_sequence(self) -> int:
        return self._next_sequence

    def skip(self, count: int) -> None:
        """Leave a gap of `count` values, like an IDENTITY cache jump or rolled-back inserts."""
        if count < 0:
            raise ValueError("a gap cannot be negative")
        self._next_sequence += count

    # -- operations ----------------------------------------------------------------------

    def store(self, key: int, timestamp: int) -> Transaction | None:
        """STOW commit of one instance; None (no row) if it already exists."""
        self._check_unlocked([key])
        if self.registry.current[key]:
            return None
        txn = self._begin()
        watermark = self.registry.next_watermark()
        self._add_row(txn, Action.CREATE, key, watermark, timestamp)
        txn.effects.append((key, watermark, None))
        return self._lock(txn)

    def delete(self, keys: list[int], timestamp: int) -> Transaction:
        """One Delete row per created instance, all with one timestamp."""
        created = self._created(keys)
        txn = self._begin()
        for key in created:
            self._add_row(txn, Action.DELETE, key, self.registry.watermark[key], timestamp)
            txn.effects.append((key, 0, _KEEP))
        return self._lock(txn)

    def update(self, keys: list[int], timestamp: int, patient: Patient) -> Transaction:
        """Bulk update: a new version, and one Update row, per created instance."""
        created = self._created(keys)
        txn = self._begin()
        for key in created:
            watermark = self.registry.next_watermark()
            self._add_row(txn, Action.UPDATE, key, watermark, timestamp)
            txn.effects.append((key, watermark, patient))
        return self._lock(txn)

    def commit(self, txn: Transaction) -> None:
        registry = self.registry
        for key, watermark, override in txn.effects:
            registry.current[key] = watermark
            if watermark:
                registry.watermark[key] = watermark
            if override is None:
                registry.patient_override.pop(key, None)
            elif override is not _KEEP:
                registry.patient_override[key] = override
            self._invalidate(key)
        for row in txn.rows:
            self.status[row] = COMMITTED
            self._index_by_time(row)
        self._release(txn)

    def abort(self, txn: Transaction) -> None:
        for row in txn.rows:
            self.status[row] = ABORTED
        self._release(txn)

    # -- reads ---------------------------------------------------------------------------

    def state(self, row: int) -> State:
        current = self.registry.current[self.key[row]]
        if not current:
            return State.DELETED
        return State.CURRENT if current == self.original[row] else State.REPLACED

    def v1_rows(self, offset: int, limit: int) -> list[int]:
        """Committed rows with sequence in (offset, offset + limit], by sequence."""
        low = bisect_right(self.sequence, offset)
        high = bisect_right(self.sequence, offset + limit)
        status = self.status
        return [row for row in range(low, high) if status[row] == COMMITTED]

    def v1_blocked(self, offset: int, limit: int) -> bool:
        """Whether an in-flight row lies in the window (HOLDLOCK makes the reader wait)."""
        return any(
            offset < self.sequence[row] <= offset + limit
            for txn in self.pending.values()
            for row in txn.rows
        )

    def v2_rows(self, start: int, end: int, offset: int, limit: int) -> list[int]:
        """Committed rows with start <= timestamp < end by (timestamp, sequence), paged."""
        by_time = self.timestamp.__getitem__
        low = bisect_left(self.time_order, start, key=by_time)
        high = bisect_left(self.time_order, end, key=by_time)
        first = low + offset
        return list(self.time_order[first : min(high, first + limit)]) if first < high else []

    def latest_v1(self) -> tuple[int | None, bool]:
        """(highest committed row, whether a reader would block on an in-flight one above it)."""
        for row in range(len(self.status) - 1, -1, -1):
            if self.status[row] != ABORTED:
                return (row, False) if self.status[row] == COMMITTED else (None, True)
        return None, False

    def last_committed(self) -> int | None:
        """The committed row with the highest sequence, whatever is in flight above it."""
        status = self.status
        return next((r for r in range(len(status) - 1, -1, -1) if status[r] == COMMITTED), None)

    def latest_v2(self) -> int | None:
        return self.time_order[-1] if self.time_order else None

    def visible_rows(self) -> list[int]:
        status = self.status
        return [row for row in range(len(status)) if status[row] == COMMITTED]

    # -- internals -----------------------------------------------------------------------

    def _begin(self) -> Transaction:
        txn = Transaction(self._next_transaction)
        self._next_transaction += 1
        return txn

    def _created(self, keys: list[int]) -> list[int]:
        self._check_unlocked(keys)
        created = [key for key in keys if self.registry.current[key]]
        if not created:
            raise NotFound("no stored instance in scope")
        return created

    def _check_unlocked(self, keys: list[int]) -> None:
        locked = self.registry.locked
        if locked and any(key in locked for key in keys):
            raise Conflict("an instance in scope has a write in flight")

    def _lock(self, txn: Transaction) -> Transaction:
        self.registry.locked.update(txn.keys)
        self.pending[txn.id] = txn
        return txn

    def _release(self, txn: Transaction) -> None:
        self.registry.locked.difference_update(txn.keys)
        del self.pending[txn.id]

    def _add_row(
        self, txn: Transaction, action: Action, key: int, watermark: int, timestamp: int
    ) -> None:
        row = len(self.sequence)
        self.sequence.append(self._next_sequence)
        self._next_sequence += 1
        self.timestamp.append(timestamp)
        self.action.append(action)
        self.key.append(key)
        self.original.append(watermark)
        self.previous.append(self.registry.last_row[key])
        self.registry.last_row[key] = row
        self.status.append(PENDING)
        self.cache.add_row()
        txn.rows.append(row)

    def _invalidate(self, key: int) -> None:
        row = self.registry.last_row[key]
        while row >= 0:
            self.cache.forget(row)
            row = self.previous[row]

    def _index_by_time(self, row: int) -> None:
        order = self.time_order
        stamp = self.timestamp[row]
        if not order or (self.timestamp[order[-1]], self.sequence[order[-1]]) <= (
            stamp,
            self.sequence[row],
        ):
            order.append(row)
        else:
            insort(order, row, key=lambda r: (self.timestamp[r], self.sequence[r]))
