"""The contiguous low watermark of handled feed positions.

Entries are delivered concurrently and acknowledged out of order, but a cursor may only
move past an entry once it and everything before it was handled (delivered, dead-lettered,
or filtered out). Every admitted position takes a slot in feed order; the watermark is the
position of the last slot of the fully handled prefix. The open slots are bounded in number
(`capacity`) and in the bytes they hold (`capacity_bytes`): admitting waits while the route
is that far ahead of its oldest unhandled entry, which bounds memory by configuration rather
than by backlog size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Slot:
    """One admitted position. Callers may subclass it to carry their own payload (a route's
    slots are its queued events), saving an object per entry."""

    __slots__ = ("done", "position", "size", "timestamp")

    def __init__(
        self, position: Any, done: bool = False, timestamp: str | None = None, size: int = 0
    ) -> None:
        self.position = position
        self.done = done
        self.timestamp = timestamp
        self.size = size  # bytes held while the slot is open


class AckTracker:
    def __init__(self, position: Any, capacity: int, capacity_bytes: int = 2**62) -> None:
        self.watermark = position
        self.handled = 0  # slots ever collected behind the watermark
        self.capacity = max(1, capacity)
        self.capacity_bytes = capacity_bytes
        self.bytes = 0  # held by the open slots
        self.moved = asyncio.Event()
        self._slots: deque[Slot] = deque()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def idle(self) -> bool:
        """True when every admitted slot is handled."""
        return not self._slots

    @property
    def oldest_timestamp(self) -> str | None:
        """The feed timestamp of the oldest entry not yet handled (None when idle)."""
        return self._slots[0].timestamp if self._slots else None

    @property
    def full(self) -> bool:
        return len(self._slots) >= self.capacity or self.bytes >= self.capacity_bytes

    async def room(self) -> None:
        """Wait until a slot is free: the route is `capacity` entries (or `capacity_bytes`)
        ahead of its oldest unhandled one."""
        while self.full:
            self._room.clear()
            await self._room.wait()

    def add(self, slot: Slot) -> None:
        """The slot of the next position in feed order (call `room()` first to stay within
        capacity); a done slot at the head is collected at once."""
        self._slots.append(slot)
        self.bytes += slot.size
        if slot.done:
            self._collect()

    def complete(self, slot: Slot) -> None:
        slot.done = True
        if self._slots and self._slots[0] is slot:
            self._collect()

    def _collect(self) -> None:
        slots = self._slots
        if not (slots and slots[0].done):
            return
        while slots and slots[0].done:
            slot = slots.popleft()
            self.watermark = slot.position
            self.bytes -= slot.size
            self.handled += 1
        self.moved.set()
        if not self.full:
            self._room.set()
