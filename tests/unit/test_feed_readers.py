"""Reader logic (v1 windows, v2 keyset paging) against an in-memory feed."""

import asyncio

import httpx
import orjson
import pytest

from bridge.core.entry import parse_entry, parse_served
from bridge.feed import (
    FeedClient,
    FeedResetError,
    FeedSource,
    SequenceReader,
    TimePosition,
    TimeWindowReader,
    from_ticks,
    now_ticks,
    to_ticks,
)
from tests.peers.feed_mock import StreamingMock

BASE = to_ticks("2024-05-10T00:00:00+00:00")


def row(sequence, ticks=None):
    return {
        "sequence": sequence,
        "studyInstanceUid": f"1.{sequence % 7}",
        "seriesInstanceUid": "2",
        "sopInstanceUid": f"3.{sequence}",
        "action": "Create",
        "timestamp": from_ticks(BASE + sequence * 10 if ticks is None else ticks),
        "state": "Current",
    }


class MemorySource:
    """Just enough of FeedSource: serves parsed entries with the server's query semantics."""

    def __init__(self, rows, page_size=10, api_version="v1"):
        self.rows = rows
        self.page_size = page_size
        self.api_version = api_version
        self.max_page_bytes = 8_000_000
        self.window_calls = []
        self.inflight = 0
        self.max_inflight = 0

    def _entries(self, rows):
        return [parse_entry(dict(r)) for r in rows]

    async def latest(self, max_age=0.0):
        if not self.rows:
            return None
        if self.api_version == "v1":
            key = lambda r: r["sequence"]  # noqa: E731
        else:
            key = lambda r: (to_ticks(r["timestamp"]), r["sequence"])  # noqa: E731
        return self._entries([max(self.rows, key=key)])[0]

    async def sequence_window(self, index, *, complete):
        self.window_calls.append(index)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        await asyncio.sleep(0.001)
        self.inflight -= 1
        low, high = index * self.page_size, (index + 1) * self.page_size
        return self._entries(
            sorted(
                (r for r in self.rows if low < r["sequence"] <= high), key=lambda r: r["sequence"]
            )
        )

    async def time_window(self, start, end, offset, limit=None):
        low = to_ticks(start) if start else -1
        high = to_ticks(end)
        rows = sorted(
            (r for r in self.rows if low <= to_ticks(r["timestamp"]) < high),
            key=lambda r: (to_ticks(r["timestamp"]), r["sequence"]),
        )
        return self._entries(rows[offset : offset + (limit or self.page_size)])


async def read_until_caught_up(reader, position, limit=10_000):
    entries, pages = [], []
    async for page in reader.pages(position):
        pages.append(page)
        entries += page.entries
        if page.caught_up:
            break
        assert len(pages) < limit, "reader does not converge"
    return entries, pages


async def test_v1_reads_across_gaps_wider_than_a_page_exactly_once_in_order():
    sequences = [1, 2, 3, 550, 551, 2000, 2001, 2010]
    source = MemorySource([row(s) for s in sequences], page_size=10)
    reader = SequenceReader(source, prefetch=8, poll_interval=0.01)
    entries, pages = await read_until_caught_up(reader, 0)
    assert [e.sequence for e in entries] == sequences
    assert [e.position for e in entries] == sequences
    assert pages[-1].position == 2010 and pages[-1].latest == 2010
    positions = [p.position for p in pages]
    assert positions == sorted(positions)
    assert 1 < source.max_inflight <= 8


async def test_v1_resumes_mid_window_without_repeating():
    source = MemorySource([row(s) for s in range(1, 40)], page_size=10)
    reader = SequenceReader(source, prefetch=2, poll_interval=0.01)
    entries, _ = await read_until_caught_up(reader, 15)
    assert [e.sequence for e in entries] == list(range(16, 40))


async def test_v1_empty_feed_is_caught_up_at_zero():
    reader = SequenceReader(MemorySource([]), poll_interval=0.01)
    entries, pages = await read_until_caught_up(reader, 0)
    assert entries == [] and pages[0].position == 0 and pages[0].latest == 0


async def test_v1_picks_up_entries_appended_while_polling():
    source = MemorySource([row(1)], page_size=10)
    reader = SequenceReader(source, poll_interval=0.01)
    seen = []
    async for page in reader.pages(0):
        seen += [e.sequence for e in page.entries]
        if page.caught_up and len(seen) == 1:
            source.rows += [row(2), row(45)]
        if len(seen) == 3:
            break
    assert seen == [1, 2, 45]


async def test_v1_cursor_ahead_of_latest_reports_a_reset():
    reader = SequenceReader(MemorySource([row(s) for s in range(1, 5)]), poll_interval=0.01)
    with pytest.raises(FeedResetError, match="ahead of the feed's latest sequence"):
        await read_until_caught_up(reader, 5000)


async def test_v1_poison_without_sequence_is_kept_in_place():
    rows = [row(1), {"sequence": "x"}, row(3)]
    source = MemorySource([], page_size=10)
    source.sequence_window = lambda index, complete: _rows(rows)  # type: ignore[method-assign]
    source.rows = [row(3)]
    reader = SequenceReader(source, poll_interval=0.01)
    entries, _ = await read_until_caught_up(reader, 0)
    assert [e.sequence for e in entries] == [1, None, 3]
    assert entries[1].poison and entries[1].position == 1


async def _rows(rows):
    return [parse_entry(dict(r)) for r in rows]


def v2_rows(count, same_timestamp_from=None):
    """`count` rows; from `same_timestamp_from` on they share one timestamp (a study delete)."""
    rows = []
    for s in range(1, count + 1):
        ticks = (
            BASE
            + (same_timestamp_from if same_timestamp_from and s >= same_timestamp_from else s) * 10
        )
        rows.append(row(s, ticks))
    return rows


async def test_v2_pages_through_more_same_timestamp_rows_than_a_page():
    source = MemorySource(v2_rows(95, same_timestamp_from=20), page_size=10, api_version="v2")
    reader = TimeWindowReader(source, poll_interval=0.01, safety_lag=0)
    entries, pages = await read_until_caught_up(reader, None)
    assert [e.sequence for e in entries] == list(range(1, 96))
    assert pages[-1].position.sequence == 95


async def test_v2_resume_skips_rows_handled_before_at_the_same_timestamp():
    rows = v2_rows(50, same_timestamp_from=10)
    source = MemorySource(rows, page_size=10, api_version="v2")
    reader = TimeWindowReader(source, poll_interval=0.01, safety_lag=0)
    start = parse_entry(rows[29])
    position = TimePosition(to_ticks(start.timestamp), 30, start.timestamp)
    entries, _ = await read_until_caught_up(reader, position)
    assert [e.sequence for e in entries] == list(range(31, 51))


async def test_v2_time_order_differs_from_sequence_order():
    rows = [row(1, BASE + 10), row(3, BASE + 20), row(2, BASE + 30), row(4, BASE + 30)]
    source = MemorySource(rows, page_size=2, api_version="v2")
    reader = TimeWindowReader(source, poll_interval=0.01, safety_lag=0)
    entries, _ = await read_until_caught_up(reader, None)
    assert [e.sequence for e in entries] == [1, 3, 2, 4]


async def test_v2_rows_inside_the_safety_lag_wait():
    now = now_ticks()
    rows = [row(1, now - 600 * 10_000_000), row(2, now)]
    source = MemorySource(rows, page_size=10, api_version="v2")
    reader = TimeWindowReader(source, poll_interval=0.01, safety_lag=300)
    seen = []

    async def consume():
        async for page in reader.pages(None):
            seen.extend(e.sequence for e in page.entries)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    assert seen == [1]


async def test_v2_duplicates_from_shifting_offsets_are_dropped():
    rows = v2_rows(30)
    source = MemorySource(rows, page_size=10, api_version="v2")
    served = source.time_window

    async def shifting(start, end, offset, limit=None):  # a late row shifts later pages
        return await served(start, end, max(0, offset - 1), limit)

    source.time_window = shifting  # type: ignore[method-assign]
    reader = TimeWindowReader(source, poll_interval=0.01, safety_lag=0)
    entries, _ = await read_until_caught_up(reader, None)
    assert [e.sequence for e in entries] == list(range(1, 31))


async def test_v2_cursor_ahead_of_latest_reports_a_reset():
    source = MemorySource(v2_rows(3), api_version="v2")
    reader = TimeWindowReader(source, poll_interval=0.01, safety_lag=0)
    ahead = TimePosition(BASE + 10_000, 99, from_ticks(BASE + 10_000))
    with pytest.raises(FeedResetError):
        await read_until_caught_up(reader, ahead)


def test_positions_round_trip_through_text():
    assert SequenceReader.decode(SequenceReader.encode(1234)[0]) == 1234
    position = TimePosition(
        to_ticks("2024-05-10T16:12:03.1234567+00:00"), 7, "2024-05-10T16:12:03.1234567+00:00"
    )
    text, sequence = TimeWindowReader.encode(position)
    assert sequence == 7 and TimeWindowReader.decode(text) == position
    assert TimeWindowReader.decode(TimeWindowReader.encode(None)[0]) is None


class PaddedSource(MemorySource):
    """Entries with served bytes of about `padding` bytes each."""

    def __init__(self, rows, padding, **options):
        super().__init__(rows, **options)
        self.padding = padding
        self.fetched = 0

    def _entries(self, rows):
        return [parse_served(orjson.dumps({**r, "pad": "x" * self.padding})) for r in rows]

    async def sequence_window(self, index, *, complete):
        entries = await super().sequence_window(index, complete=complete)
        self.fetched += 1
        return entries


async def test_v1_windows_fetched_ahead_are_bounded_in_bytes():
    source = PaddedSource([row(s) for s in range(1, 1001)], 10_000, page_size=10)
    reader = SequenceReader(source, prefetch=8, poll_interval=0.01, prefetch_bytes=250_000)
    held = []  # windows fetched, not yet yielded (~106 KB each)
    async for page in reader.pages(0):
        held.append(source.fetched - len(held))
        if page.caught_up:
            break
    assert max(held) <= 8  # the first burst: nothing known of the windows' size yet
    assert max(held[8:]) <= 3, held


async def test_source_cache_is_bounded_in_bytes():
    """Regression: with several routes the shared cache kept up to 64 windows whatever
    their size."""
    served = [orjson.dumps({**row(s), "pad": "x" * 10_000}) for s in range(1, 101)]

    def handler(request):
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        rows = served[offset : offset + limit]
        return httpx.Response(200, content=b"[" + b",".join(rows) + b"]")

    client = FeedClient("http://dicom.test", transport=StreamingMock(handler))
    source = FeedSource(client, page_size=10, include_metadata=False, cache_bytes=250_000)
    async with client:
        for index in range(10):
            await source.sequence_window(index, complete=True)
    assert 1 <= len(source._cache) <= 2 and source._cached_bytes <= 250_000
