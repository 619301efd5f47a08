"""One shared reader of a feed for every route: single-flight requests and a small cache.

Routes at the same position ask for the same v1 window (windows are aligned to multiples of
the page size) or the same latest entry at about the same time; the first request goes to
the service and the others wait for its answer. Complete v1 windows (entirely at or below
the latest sequence, hence final) are kept in a small LRU, bounded in windows and in bytes,
so a route trailing another by a few pages does not fetch them again. N sinks therefore do
not multiply the load on the DICOM service in the common case.

A window whose answer is over `max_page_bytes` is read by each route in smaller windows
(`sequence_parts`), which are neither shared nor cached: that is rare, and keeping them
would hold what the cap is there to bound.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from typing import Any, TypeVar

from bridge.core.entry import Entry
from bridge.feed._client import FeedClient

T = TypeVar("T")

#: What an entry costs in memory beyond its served bytes (the Entry object, its strings).
ENTRY_OVERHEAD = 600


def size_of(entries: list[Entry]) -> int:
    """Bytes an answer's entries hold, about."""
    return sum(len(entry.json or b"") + ENTRY_OVERHEAD for entry in entries)


class FeedSource:
    def __init__(
        self,
        client: FeedClient,
        *,
        page_size: int,
        include_metadata: bool,
        cache_windows: int = 64,
        cache_bytes: int | None = None,
    ) -> None:
        """`cache_bytes` defaults to twice `max_page_bytes`."""
        self.client = client
        self.page_size = page_size
        self.include_metadata = include_metadata
        self._cache: OrderedDict[int, tuple[list[Entry], int]] = OrderedDict()
        self._cache_windows = cache_windows
        self._cache_bytes = 2 * client.max_page_bytes if cache_bytes is None else cache_bytes
        self._cached_bytes = 0
        self._inflight: dict[Hashable, asyncio.Task[Any]] = {}
        self._latest: tuple[float, Entry | None] | None = None

    @property
    def latest_seen(self) -> Entry | None:
        """The latest entry from the last answer, without asking the service."""
        return self._latest[1] if self._latest is not None else None

    @property
    def latest_known(self) -> bool:
        """Whether the feed told its latest entry once (`latest_seen` None: an empty feed)."""
        return self._latest is not None

    @property
    def api_version(self) -> str:
        return self.client.api_version

    @property
    def max_page_bytes(self) -> int:
        return self.client.max_page_bytes

    async def latest(self, max_age: float = 0.0) -> Entry | None:
        """The feed's latest entry, reusing an answer younger than `max_age` seconds."""
        if self._latest is not None and time.monotonic() - self._latest[0] <= max_age:
            return self._latest[1]
        started = time.monotonic()
        entry = await self._shared(("latest",), self.client.latest)
        if self._latest is None or self._latest[0] < started:
            self._latest = (started, entry)
        return entry

    async def sequence_window(self, index: int, *, complete: bool) -> list[Entry]:
        """v1 window number `index`: sequences in (index*L, (index+1)*L]. `complete` says the
        window lies at or below the latest sequence, so its rows are final and cacheable.
        Raises PageTooLarge when its answer is over `max_page_bytes` (`sequence_parts`)."""
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached[0]
        offset = index * self.page_size
        entries = await self._shared(
            ("v1", index),
            lambda: self.client.sequence_page(offset, self.page_size, self.include_metadata),
        )
        if complete and self._cache_windows:
            self._remember(index, entries)
        return entries

    def sequence_parts(self, index: int) -> AsyncIterator[tuple[int, list[Entry]]]:
        """v1 window number `index`, too large for one answer, in smaller windows: (end
        sequence, entries) each, in order."""
        offset = index * self.page_size
        return self.client.sequence_parts(
            offset, self.page_size, self.include_metadata, whole=False
        )

    async def time_window(
        self, start: str | None, end: str, offset: int, limit: int | None = None
    ) -> list[Entry]:
        """v2 rows of [start, end) from `offset` (at most `limit`, default the page size),
        one request for concurrent identical asks. Raises PageTooLarge when the answer is
        over `max_page_bytes` and `limit` is more than one row."""
        limit = limit or self.page_size
        return await self._shared(
            ("v2", start, end, offset, limit),
            lambda: self.client.time_page(start, end, offset, limit, self.include_metadata),
        )

    async def close(self) -> None:
        for task in self._inflight.values():
            task.cancel()
        self._inflight.clear()
        await self.client.close()

    async def _shared(self, key: Hashable, fetch: Callable[[], Coroutine[Any, Any, T]]) -> T:
        task: asyncio.Task[T] | None = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        # A waiter giving up (its route stopping) must not cancel the others' request.
        return await asyncio.shield(task)

    def _remember(self, index: int, entries: list[Entry]) -> None:
        size = size_of(entries)
        if index in self._cache or size > self._cache_bytes:
            return
        self._cache[index] = (entries, size)
        self._cached_bytes += size
        while len(self._cache) > self._cache_windows or self._cached_bytes > self._cache_bytes:
            self._cached_bytes -= self._cache.popitem(last=False)[1][1]

    def _forget(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here; waiters re-raise it themselves
