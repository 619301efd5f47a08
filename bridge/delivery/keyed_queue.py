"""Per-study ordering for concurrent sends.

Events wait here in feed order. A batch never takes an event whose key (the
StudyInstanceUID) is already in flight in another batch, and takes a key's events in
order, so the events of one study reach the sink in feed order (and a failing one is
retried before any later event of its study) while different studies go out in parallel.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class KeyedQueue(Generic[T]):
    def __init__(self) -> None:
        self._waiting: dict[str, deque[tuple[int, T]]] = {}
        self._ready: dict[str, None] = {}  # keys with waiting items and none in flight
        self._busy: set[str] = set()
        self._counter = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def ready(self) -> bool:
        return bool(self._ready)

    def put(self, key: str, item: T) -> None:
        self._counter += 1
        self._waiting.setdefault(key, deque()).append((self._counter, item))
        self._size += 1
        if key not in self._busy:
            self._ready[key] = None

    def take(self, limit: int) -> tuple[list[T], set[str]]:
        """Up to `limit` items in feed order, and their keys (now in flight)."""
        taken: list[tuple[int, T]] = []
        keys: set[str] = set()
        while self._ready and len(taken) < limit:
            key = next(iter(self._ready))
            del self._ready[key]
            queue = self._waiting[key]
            while queue and len(taken) < limit:
                taken.append(queue.popleft())
            if not queue:
                del self._waiting[key]
            self._busy.add(key)
            keys.add(key)
        self._size -= len(taken)
        taken.sort(key=lambda pair: pair[0])
        return [item for _, item in taken], keys

    def release(self, keys: set[str]) -> None:
        """The batch holding `keys` is resolved: their next events may go."""
        for key in keys:
            self._busy.discard(key)
            if key in self._waiting:
                self._ready[key] = None
