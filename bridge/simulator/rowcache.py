"""A bounded cache of serialized feed rows.

A cached entry costs ~400 bytes (three 60-character UIDs dominate), so caching all of a
million-row feed would double the simulator's memory; serving a row from the cache is ~10x
cheaper than rendering it. The cache keeps the most recently rendered `capacity` rows:
`slots[row]` is the row's bytes or None, and a ring of row numbers evicts the oldest
insertion. A row rendered again after an invalidation takes a second ring place, so its
first place may evict it early; that costs one extra render, never a stale answer.
"""

from __future__ import annotations

from array import array

DEFAULT_CAPACITY = 250_000


class RowCache:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the row cache needs room for at least one row")
        self.slots: list[bytes | None] = []
        self._ring = array("q", [-1]) * capacity
        self._next = 0

    def add_row(self) -> None:
        self.slots.append(None)

    def put(self, row: int, data: bytes) -> bytes:
        evicted = self._ring[self._next]
        if evicted >= 0:
            self.slots[evicted] = None
        self._ring[self._next] = row
        self._next = (self._next + 1) % len(self._ring)
        self.slots[row] = data
        return data

    def forget(self, row: int) -> None:
        self.slots[row] = None
