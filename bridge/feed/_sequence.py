"""v1 reading: a sequence cursor over fixed windows, fetched ahead concurrently.

In v1, `offset` is an exclusive sequence number and `limit` the width of a sequence window:
a page holds the rows in (offset, offset+limit], possibly none even when later rows exist
(a gap wider than a page). Every window up to the latest sequence is therefore known in
advance; the reader fetches up to `prefetch` of them at once and yields them in order, so
catching up is bound by throughput, not by the service's round-trip time.

A window entirely at or below `latest` is final (the server's range locks make a read block
until rows in range commit), so the cursor moves to the window's end even when it was empty.
The window holding `latest` only moves the cursor to its last entry.

Memory is bounded in bytes: no window is started while the windows fetched ahead (those
still in flight counted at the size of the largest recent window) would pass
`prefetch_bytes`, and a window whose answer is over `max_page_bytes` is read in smaller
windows yielded one by one, never reassembled.

A cursor ahead of `latest` means the service was reset or restored: the reader raises
`FeedResetError` instead of skipping forward forever (DICOMcast's failure mode).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from bridge.core.entry import Entry
from bridge.feed._client import PageTooLarge
from bridge.feed._errors import FeedResetError
from bridge.feed._page import Page
from bridge.feed._source import FeedSource, size_of

#: A latest answer this recent is shared between routes polling together.
LATEST_MAX_AGE = 0.05

_Fetching = asyncio.Future[tuple[list[Entry], int]]  # a window's rows and their bytes


class SequenceReader:
    def __init__(
        self,
        source: FeedSource,
        *,
        prefetch: int = 4,
        poll_interval: float = 5.0,
        prefetch_bytes: int | None = None,
    ) -> None:
        """`prefetch`: windows fetched ahead at most; `prefetch_bytes`: what the windows
        fetched ahead may hold before no more are started (default: twice max_page_bytes)."""
        self.source = source
        self.prefetch = max(1, prefetch)
        self.poll_interval = poll_interval
        self.prefetch_bytes = prefetch_bytes or 2 * source.max_page_bytes

    @staticmethod
    def encode(position: int) -> tuple[str, int]:
        return str(position), position

    @staticmethod
    def decode(text: str) -> int:
        position = int(text)
        if position < 0:
            raise ValueError("a v1 cursor is a sequence number >= 0")
        return position

    initial = 0

    async def pages(self, cursor: int) -> AsyncIterator[Page]:
        size = self.source.page_size
        latest = await self._latest(cursor)
        while True:
            if cursor >= latest:
                yield Page([], cursor, True, latest)
                await asyncio.sleep(self.poll_interval)
                latest = await self._latest(cursor)
                continue
            started_at = cursor
            last_index = (latest - 1) // size
            windows: deque[tuple[int, _Fetching]] = deque()
            recent: deque[int] = deque(maxlen=self.prefetch)  # sizes of the last windows
            next_index = cursor // size
            try:
                while windows or next_index <= last_index:
                    while (
                        next_index <= last_index
                        and len(windows) < self.prefetch
                        and (not windows or _ahead(windows, recent) < self.prefetch_bytes)
                    ):
                        complete = (next_index + 1) * size <= latest
                        fetch = self._fetch(next_index, complete)
                        windows.append((next_index, asyncio.ensure_future(fetch)))
                        next_index += 1
                    index, fetching = windows[0]
                    try:
                        rows, window_bytes = await fetching
                    except PageTooLarge:
                        windows.popleft()
                        async for page in self._parts(index, cursor, latest):
                            cursor = page.position
                            yield page
                        continue
                    windows.popleft()
                    recent.append(window_bytes)
                    page = _page(rows, cursor, index * size, (index + 1) * size, latest)
                    cursor = page.position
                    yield page
            finally:
                for _, fetching in windows:
                    fetching.cancel()
            latest = await self._latest(cursor)
            if cursor == started_at:
                # `latest` names a row its window did not return: do not spin on it.
                await asyncio.sleep(self.poll_interval)

    async def _fetch(self, index: int, complete: bool) -> tuple[list[Entry], int]:
        entries = await self.source.sequence_window(index, complete=complete)
        return entries, size_of(entries)

    async def _parts(self, index: int, cursor: int, latest: int) -> AsyncIterator[Page]:
        """A window too large for one answer, as the pages of its smaller windows."""
        start = index * self.source.page_size
        async for end, rows in self.source.sequence_parts(index):
            page = _page(rows, cursor, start, end, latest)
            if page.entries or page.position != cursor:
                cursor = page.position
                yield page
            start = end

    async def _latest(self, cursor: int) -> int:
        latest = await self._latest_sequence(LATEST_MAX_AGE)
        if cursor > latest:
            latest = await self._latest_sequence(0.0)  # confirm before declaring a reset
            if cursor > latest:
                raise FeedResetError(
                    f"the cursor (sequence {cursor}) is ahead of the feed's latest sequence "
                    f"({latest}): the DICOM service was reset or restored. Check the service, "
                    "then move the cursor with `dicom-bridge offsets set` or `offsets reset`"
                )
        return latest

    async def _latest_sequence(self, max_age: float) -> int:
        entry = await self.source.latest(max_age)
        return entry.sequence or 0 if entry is not None else 0


def _ahead(windows: deque[tuple[int, _Fetching]], recent: deque[int]) -> int:
    """Bytes of the windows fetched ahead and not yielded yet: those still in flight at the
    size of the largest recent window."""
    estimate = max(recent, default=0)
    return sum(
        fetching.result()[1] if fetching.done() and fetching.exception() is None else estimate
        for _, fetching in windows
        if not fetching.cancelled()
    )


def _page(rows: list[Entry], cursor: int, start: int, end: int, latest: int) -> Page:
    """The page of the rows of the window (start, end]: the cursor moves to the window's
    end if the window is final, else to its last row."""
    entries = _after(rows, cursor, start)
    if end <= latest:
        cursor = max(cursor, end)
    elif entries:
        cursor = max(cursor, max(e.position for e in entries))
    return Page(entries, cursor, cursor >= latest, latest)


def _after(rows: list[Entry], cursor: int, window_start: int) -> list[Entry]:
    """The rows of a window past the cursor, each with its position set. A poison row
    without a sequence sits at the position of the row before it, and is kept unless the
    next row with a sequence is at or before the cursor (then it was handled already)."""
    kept: list[Entry] = []
    unsequenced: list[Entry] = []
    previous = window_start
    for row in rows:
        if row.sequence is None:
            row.position = previous
            unsequenced.append(row)
            continue
        row.position = previous = row.sequence
        if row.sequence > cursor:
            kept += unsequenced
            kept.append(row)
        unsequenced = []
    return kept + unsequenced
