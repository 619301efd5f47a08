"""A route's durable cursor: where it starts, what it commits, and the checks that the feed
is still the one the cursor was committed against.

A position alone cannot tell a reset service from the one it was committed against once
the new feed has grown past it: the reader would deliver only what lies above the old
position. So each commit stores the fingerprint (sequence, timestamp, SOP Instance UID) of
the last entry at or before the cursor, and the feed is asked for that entry on start and
every `VERIFY_INTERVAL` while running (one small read). An absent or different entry stops
the route with its stored cursor at the last position verified against the feed, so nothing
of the new feed counts as progress until an operator moves it (`offsets set|reset`).

A route without a cursor starts at its `start` position (earliest, latest or a sequence),
committed at once so that a restart does not pick another, and logged at WARNING.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from bridge.core.entry import Entry
from bridge.feed import FeedClient, FeedResetError, Page, Reader, TimePosition, from_ticks, to_ticks
from bridge.offsets import Fingerprint, OffsetStore, StoredOffset

if TYPE_CHECKING:
    from bridge.config import FeedConfig

log = logging.getLogger("bridge.cursor")

#: Seconds between checks that the feed still holds the cursor's entry (and that the
#: offset store's file is still there) while a route runs.
VERIFY_INTERVAL = 60.0
_WINDOW = 100  # v1 sequences read around a position: the API's largest page
_V2_PAGE = 200
_RESOLVE = "move the cursor with `dicom-bridge offsets set` or `offsets reset`"


class RouteFailed(Exception):
    """The route cannot continue; the message is the one line operators see."""


def fingerprint_of(entry: Entry | None) -> Fingerprint | None:
    if entry is None or entry.poison or entry.sequence is None:
        return None
    return Fingerprint(entry.sequence, entry.timestamp, entry.sop)


def same_entry(fingerprint: Fingerprint, entry: Entry | None) -> bool:
    """Whether the feed's `entry` is the fingerprinted one (timestamps compared as instants:
    `Z` and `+00:00`, trailing zeros)."""
    return (
        entry is not None
        and not entry.poison
        and entry.sequence == fingerprint.sequence
        and entry.sop == fingerprint.sop
        and _instant(entry.timestamp) == _instant(fingerprint.timestamp)
    )


def _instant(timestamp: str) -> int | str:
    try:
        return to_ticks(timestamp)
    except ValueError:
        return timestamp


def _describe(fingerprint: Fingerprint) -> str:
    return f"sequence {fingerprint.sequence} at {fingerprint.timestamp}, SOP {fingerprint.sop}"


class FeedLookup:
    """Single entries of one feed, for cursors: fingerprint checks, start positions and
    `offsets set`. A v2 feed reads sequences through the service's v1 API (`sequences`
    opens a v1 client of it); rows of one timestamp come from v2 time windows."""

    def __init__(self, client: FeedClient, sequences: Callable[[], FeedClient]) -> None:
        self.client = client
        self.v2 = client.api_version == "v2"
        self._sequences = sequences

    async def latest(self) -> Entry | None:
        return await self.client.latest()

    async def find(self, sequence: int, timestamp: str) -> Entry | None:
        """The feed's row with `sequence` (in v2, among the rows at `timestamp`)."""
        if not self.v2:
            rows = await self.client.sequence_window(sequence - 1, 1, False)
            return next((row for row in rows if row.sequence == sequence), None)
        start = to_ticks(timestamp)
        moment, end, offset = from_ticks(start), from_ticks(start + 1), 0
        while True:  # a bulk delete writes many rows with one timestamp
            rows = await self.client.time_window(moment, end, offset, _V2_PAGE, False)
            found = next((row for row in rows if row.sequence == sequence), None)
            if found is not None or len(rows) < _V2_PAGE:
                return found
            offset += len(rows)

    async def at_cursor(self, position: Any) -> Entry | None:
        """The entry a cursor stands on: in v1 the last one at or before it (within a page),
        in v2 the row the position names."""
        if isinstance(position, TimePosition):
            return await self.find(position.sequence, position.timestamp)
        return await self.at_or_before(position) if position else None

    async def at_or_before(self, sequence: int) -> Entry | None:
        low = max(0, sequence - _WINDOW)
        rows = await self._window(low, sequence - low)
        return next((row for row in reversed(rows) if not row.poison), None)

    async def at_or_after(self, sequence: int) -> Entry | None:
        rows = await self._window(sequence - 1, _WINDOW)
        return next((row for row in rows if not row.poison), None)

    def after(self, sequence: int, timestamp: str) -> Any:
        """The position at which the entry (`sequence`, `timestamp`) and everything before it
        was handled."""
        if self.v2:
            return TimePosition(to_ticks(timestamp), sequence, timestamp)
        return sequence

    def before(self, sequence: int, timestamp: str) -> Any:
        """The position at which everything before the entry (`sequence`, `timestamp`) was
        handled (in v2 order)."""
        if self.v2:
            return TimePosition(to_ticks(timestamp), sequence - 1, timestamp)
        return sequence - 1

    async def _window(self, offset: int, limit: int) -> list[Entry]:
        if limit < 1:
            return []
        if not self.v2:
            return await self.client.sequence_window(offset, limit, False)
        client = self._sequences()
        try:
            return await client.sequence_window(offset, limit, False)
        finally:
            await client.close()


async def adopt_legacy_cursors(store: OffsetStore, feed: FeedConfig) -> None:
    """Versions before `feed.name` keyed cursors by the feed's URL: move them over once."""
    legacy = feed.url.rstrip("/")
    moved = await store.adopt(feed.key, legacy)
    if moved:
        log.info(
            "offset store: the cursors of %s (%s) adopted under feed.name %r",
            legacy,
            ", ".join(moved),
            feed.key,
        )


class _Committed(NamedTuple):
    text: str
    sequence: int | None
    fingerprint: Fingerprint | None


class Cursor:
    """One route's cursor in the store, under (`feed`, `sink`)."""

    def __init__(
        self,
        store: OffsetStore,
        feed: str,
        sink: str,
        reader: Reader,
        lookup: FeedLookup | None,
        start: Literal["earliest", "latest"] | int,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.store = store
        self.feed = feed
        self.sink = sink
        self.reader = reader
        self.lookup = lookup
        self.start = start
        self.log = log
        self.frozen = False  # a reset was found: the stored cursor must stay where it is
        self._marks: deque[tuple[Any, Fingerprint]] = deque()
        self._fingerprint: Fingerprint | None = None
        self._committed: _Committed | None = None
        # The cursor the next check reads the entry of: committed before the last check,
        # so before any reset that check did not see.
        self._anchor: _Committed | None = None
        # One write at a time: a reset found while a commit is in flight waits for it, then
        # puts the anchor back over it.
        self._writing = asyncio.Lock()

    async def load(self) -> tuple[StoredOffset | None, Any]:
        """The stored cursor (None: none stored) and its position."""
        stored = await self.store.load(self.feed, self.sink)
        if stored is None:
            return None, self.reader.initial
        try:
            return stored, self.reader.decode(stored.position)
        except (ValueError, KeyError, TypeError) as exc:
            raise RouteFailed(self._unfit(stored, exc)) from None

    def _unfit(self, stored: StoredOffset, exc: BaseException) -> str:
        """Why a stored cursor cannot be read, in one line: most often `feed.api_version`
        changed since it was written (v1 cursors are a sequence, v2 ones a JSON object)."""
        text = stored.position.strip()
        written = "v2" if text.startswith("{") else "v1" if text.isdigit() else None
        current = "v1" if self.reader.initial == 0 else "v2"
        if written is not None and written != current:
            at = f" --sequence {stored.sequence}" if stored.sequence is not None else ""
            return (
                f"sink {self.sink}: its cursor was stored with api_version {written}, "
                f"feed.api_version is {current} now: set feed.api_version back to {written}, "
                f"or move the cursor to the same entry for {current} with `dicom-bridge "
                f"offsets set --sink {self.sink}{at or ' --sequence N'}`"
            )
        return (
            f"sink {self.sink}: the stored cursor {stored.position!r} cannot be read "
            f"({exc}); {_RESOLVE}"
        )

    async def resolve(self, stored: StoredOffset | None, position: Any) -> Any:
        """Where the route starts: its stored cursor once the feed is known to still hold
        the cursor's entry, or its `start` position. Raises FeedResetError on a reset."""
        if stored is None:
            return await self._start()
        self._fingerprint = stored.fingerprint
        self._committed = _Committed(stored.position, stored.sequence, stored.fingerprint)
        if self.lookup is not None:
            if stored.fingerprint is None:
                await self._adopt(self.lookup, position)
            else:
                self._anchor = self._committed
                await self._verify(self.lookup, self._anchor)
        return position

    def note(self, page: Page) -> None:
        """Remember the last entry of a page the route admitted (for the commit reaching it)."""
        for entry in reversed(page.entries):
            fingerprint = fingerprint_of(entry)
            if fingerprint is not None:
                self._marks.append((entry.position, fingerprint))
                return

    async def commit(self, position: Any) -> None:
        """Store `position` with the fingerprint of the last entry at or before it."""
        async with self._writing:
            if self.frozen:
                return
            marks = self._marks
            while marks and position is not None and marks[0][0] <= position:
                self._fingerprint = marks.popleft()[1]
            await self._store(position, self._fingerprint)

    async def watch(self) -> None:
        """Every VERIFY_INTERVAL: the store's file is still there and the feed still holds
        the anchor's entry; then the cursor committed before the check began becomes the
        anchor (one committed while the check read the feed may hold entries of a feed reset
        meanwhile). The anchor predates any reset found, so it is what stays stored then."""
        while True:
            await asyncio.sleep(VERIFY_INTERVAL)
            await self.store.check()
            if self.lookup is None:
                continue
            committed = self._committed
            if self._anchor is not None and not await self._verify(self.lookup, self._anchor):
                continue
            if committed is not None and committed.fingerprint is not None:
                self._anchor = committed

    async def _verify(self, lookup: FeedLookup, cursor: _Committed) -> bool:
        """True when the feed holds the cursor's entry; False when it cannot tell now (the
        row does not parse: the next check reads it again). Raises on a reset."""
        expected = cursor.fingerprint
        if expected is None:  # never an anchor: nothing to check it against
            return True
        found = await lookup.find(expected.sequence, expected.timestamp)
        if same_entry(expected, found):
            return True
        if found is not None and found.poison:
            self.log.warning(
                "cannot check the cursor against the feed now (%s): again in %.0fs",
                found.problem,
                VERIFY_INTERVAL,
            )
            return False
        self.frozen = True
        async with self._writing:  # after a commit in flight, which may hold new entries
            if cursor != self._committed:  # commits since may hold entries of the new feed
                await self.store.commit(self.feed, self.sink, *cursor)
        shown = fingerprint_of(found)
        now = "has no such entry" if shown is None else f"has {_describe(shown)}"
        raise FeedResetError(
            f"the feed no longer holds the entry the cursor was committed after "
            f"({_describe(expected)}; it {now}): the DICOM service was reset or restored, or "
            f"feed.url names another service. Nothing more is delivered; check the service, "
            f"then {_RESOLVE}"
        )

    async def _adopt(self, lookup: FeedLookup, position: Any) -> None:
        """A cursor an older version stored, without a fingerprint: take the entry the feed
        has at it now."""
        fingerprint = fingerprint_of(await lookup.at_cursor(position))
        if fingerprint is None:
            self.log.warning(
                "the stored cursor has no fingerprint and the feed no entry at it: it gets "
                "one at its next commit"
            )
            return
        await self._store(position, fingerprint)
        self._anchor = self._committed
        self.log.info(
            "the stored cursor had no fingerprint (an older version wrote it): adopted the "
            "feed's entry at it, %s",
            _describe(fingerprint),
        )

    async def _start(self) -> Any:
        position, fingerprint = self.reader.initial, None
        if self.start == "earliest":
            where = "at the beginning of the feed"
        elif self.lookup is None:
            raise RouteFailed(f"sink {self.sink}: start: {self.start} needs to read the feed")
        elif self.start == "latest":
            latest = await self.lookup.latest()
            if latest is None:
                where = "at the beginning of the feed (it is empty)"
            else:
                assert latest.sequence is not None  # the client retries a latest without one
                position = self.lookup.after(latest.sequence, latest.timestamp)
                fingerprint = fingerprint_of(latest)
                where = f"after the feed's latest entry, sequence {latest.sequence}"
        else:
            position, fingerprint = await self._before(self.lookup, self.start)
            where = f"at sequence {self.start}"
        self.log.warning(
            "no stored cursor: starting %s (start: %s)%s", where, self.start, await self._hint()
        )
        if position != self.reader.initial:
            await self._store(position, fingerprint)
            self._anchor = self._committed if fingerprint is not None else None
        return position

    async def _before(self, lookup: FeedLookup, sequence: int) -> tuple[Any, Fingerprint | None]:
        """The position just before `sequence`, and the fingerprint of the entry there."""
        if lookup.v2:  # a v2 position needs the timestamp of an entry
            first = fingerprint_of(await lookup.at_or_after(sequence))  # not poison
            if first is None:
                raise RouteFailed(
                    f"sink {self.sink}: start: {sequence}: the feed has no entry from it to "
                    f"{sequence + _WINDOW - 1} to take a v2 position from"
                )
            position = lookup.before(first.sequence, first.timestamp)
        else:
            latest = await lookup.latest()
            last = latest.sequence or 0 if latest is not None else 0
            if sequence - 1 > last:
                raise RouteFailed(
                    f"sink {self.sink}: start: {sequence} is past the feed's latest entry "
                    f"(sequence {last})"
                )
            position = sequence - 1
        return position, fingerprint_of(await lookup.at_or_before(sequence - 1))

    async def _hint(self) -> str:
        """Cursors of other feeds in the store: maybe this one under its former name."""
        others = sorted({row.feed for row in await self.store.list() if row.feed != self.feed})
        if not others:
            return ""
        return (
            f"; the store holds cursors of other feeds ({', '.join(others)}): if one is this "
            "service under a former URL, set feed.name to it"
        )

    async def _store(self, position: Any, fingerprint: Fingerprint | None) -> None:
        text, sequence = self.reader.encode(position)
        await self.store.commit(self.feed, self.sink, text, sequence, fingerprint)
        self._fingerprint = fingerprint
        self._committed = _Committed(text, sequence, fingerprint)
