"""v2 reading: closed time windows `[position, now - safety_lag)` paged by keyset.

v2 orders rows by (timestamp, sequence) and pages with a row offset, which is only stable in
a window no longer being written: the window always ends `safety_lag` in the past, because a
store's timestamp is taken before its row commits. Inside a window, each next request
starts at the last row's timestamp and skips only the rows already seen at that exact
timestamp, so offsets stay small (the server reads offset+limit rows per request).

Windows overlap at their boundary timestamp; rows are de-duplicated by sequence (a bounded
set of recent ones) and, after a restart, by the stored (timestamp, sequence) position.

A page whose answer is over `max_page_bytes` is asked again for half the rows (down to one);
the size grows back page by page.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import NamedTuple

import orjson

from bridge.core.entry import Entry
from bridge.feed._client import PageTooLarge
from bridge.feed._errors import FeedResetError
from bridge.feed._page import Page
from bridge.feed._sequence import LATEST_MAX_AGE
from bridge.feed._source import FeedSource
from bridge.feed._timestamps import TICKS_PER_SECOND, from_ticks, now_ticks, to_ticks

#: How many recently delivered sequences are remembered for de-duplication.
RECENT_SEQUENCES = 10_000
_UNKNOWN = (2**63, 2**63)


class TimePosition(NamedTuple):
    """The last handled row: its timestamp as 100-ns ticks, its sequence, and the timestamp
    exactly as served (echoed back as `startTime`)."""

    ticks: int
    sequence: int
    timestamp: str

    @property
    def key(self) -> tuple[int, int]:
        return (self.ticks, self.sequence)


class TimeWindowReader:
    initial: TimePosition | None = None

    def __init__(
        self, source: FeedSource, *, poll_interval: float = 5.0, safety_lag: float = 60.0
    ) -> None:
        self.source = source
        self.poll_interval = poll_interval
        self.safety_lag_ticks = int(safety_lag * TICKS_PER_SECOND)

    @staticmethod
    def encode(position: TimePosition | None) -> tuple[str, int | None]:
        if position is None:
            return "", None
        text = orjson.dumps({"timestamp": position.timestamp, "sequence": position.sequence})
        return text.decode(), position.sequence

    @staticmethod
    def decode(text: str) -> TimePosition | None:
        if not text:
            return None
        value = orjson.loads(text)
        timestamp, sequence = value["timestamp"], value["sequence"]
        if not isinstance(sequence, int):
            raise ValueError("a v2 cursor needs an integer sequence")
        return TimePosition(to_ticks(timestamp), sequence, timestamp)

    async def pages(self, position: TimePosition | None) -> AsyncIterator[Page]:
        resumed_from = position
        recent = _RecentSequences(RECENT_SEQUENCES)
        while True:
            latest, latest_sequence = await self._latest(position)
            if latest is None or (position is not None and position.key >= latest):
                yield Page([], position, True, latest_sequence)
                await asyncio.sleep(self.poll_interval)
                continue
            end = now_ticks() - self.safety_lag_ticks
            before = position
            if position is None or position.ticks < end:
                async for page in self._window(position, resumed_from, end, recent, latest):
                    position = page.position
                    page.latest = latest_sequence
                    yield page
            if position == before:
                # The newer rows are still inside the safety lag.
                await asyncio.sleep(self.poll_interval)

    async def _window(
        self,
        position: TimePosition | None,
        resumed_from: TimePosition | None,
        end: int,
        recent: _RecentSequences,
        latest: tuple[int, int],
    ) -> AsyncIterator[Page]:
        start = position.timestamp if position else None
        start_ticks = position.ticks if position else None
        skip = 0
        end_text = from_ticks(end)
        size = limit = self.source.page_size
        while True:
            try:
                rows = await self.source.time_window(start, end_text, skip, limit)
            except PageTooLarge:
                limit = max(1, limit // 2)
                continue
            entries: list[Entry] = []
            for row in rows:
                key = _key(row)
                if key is not None:
                    if resumed_from is not None and key <= resumed_from.key:
                        continue
                    if recent.seen(key[1]):
                        continue
                    if position is None or key > position.key:
                        position = TimePosition(key[0], key[1], row.timestamp)
                row.position = position
                entries.append(row)
            last = _key(rows[-1]) if rows else None
            if last is not None and last[0] != start_ticks:
                start, start_ticks = rows[-1].timestamp, last[0]
                skip = sum(1 for row in rows if (k := _key(row)) and k[0] == last[0])
            else:
                skip += len(rows)
            caught_up = position is not None and position.key >= latest
            yield Page(entries, position, caught_up, 0)
            if len(rows) < limit:
                return
            limit = min(size, 2 * limit)

    async def _latest(self, position: TimePosition | None) -> tuple[tuple[int, int] | None, int]:
        """The latest entry's (ticks, sequence) or None on an empty feed, and its sequence."""
        entry = await self.source.latest(LATEST_MAX_AGE)
        if position is not None and _behind(entry, position):
            entry = await self.source.latest(0.0)  # confirm before declaring a reset
            if _behind(entry, position):
                raise FeedResetError(
                    f"the cursor (sequence {position.sequence} at {position.timestamp}) is "
                    f"ahead of the feed's latest entry ({_describe(entry)}): the DICOM service "
                    "was reset or restored. Check the service, then move the cursor with "
                    "`dicom-bridge offsets set` or `offsets reset`"
                )
        return _latest_key(entry), (entry.sequence or 0) if entry is not None else 0


def _key(row: Entry) -> tuple[int, int] | None:
    """(ticks, sequence) of a row; a row without a usable timestamp becomes poison."""
    sequence = row.sequence
    if sequence is None or row.problem is not None:  # poison
        return None
    try:
        return (to_ticks(row.timestamp), sequence)
    except ValueError as exc:
        row.problem = f"invalid timestamp: {exc}"
        return None


def _latest_key(entry: Entry | None) -> tuple[int, int] | None:
    if entry is None:
        return None
    return _key(entry) or _UNKNOWN  # an unreadable latest never means "caught up"


def _behind(entry: Entry | None, position: TimePosition) -> bool:
    latest = _latest_key(entry)
    return latest is None or latest < position.key


def _describe(entry: Entry | None) -> str:
    if entry is None:
        return "the feed is empty"
    return f"sequence {entry.sequence} at {entry.timestamp}"


class _RecentSequences:
    """A bounded set: the last `capacity` sequences handed out."""

    def __init__(self, capacity: int) -> None:
        self._order: deque[int] = deque()
        self._members: set[int] = set()
        self._capacity = capacity

    def seen(self, sequence: int) -> bool:
        """True if `sequence` was handed out before; otherwise remember it."""
        if sequence in self._members:
            return True
        self._members.add(sequence)
        self._order.append(sequence)
        if len(self._order) > self._capacity:
            self._members.discard(self._order.popleft())
        return False
