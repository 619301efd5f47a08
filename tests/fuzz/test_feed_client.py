"""Client level: `FeedClient` read through `SequenceReader` against a mock transport serving
a fuzzed feed (good and bad rows, windows whose first reads are garbage) behind transient
faults. The reader reaches the end of the feed in bounded time, every good row arrives once
and intact, every bad row becomes exactly one poison entry with a reason and its served
bytes, and no transient failure (garbage, truncation, errors) turns anything into poison."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.backoff import Backoff
from bridge.core.entry import Entry
from bridge.feed import FeedClient, FeedSource, SequenceReader
from tests.fuzz.feed_model import Feed, feeds
from tests.fuzz.settings import fuzz
from tests.peers.feed_mock import StreamingMock

FAST = Backoff(initial=0.001, maximum=0.004)
FALLBACK_AFTER = 3
TRANSIENT = ["500", "503", "429", "408", "connect", "timeout"]
FAULT_SCHEDULES = st.lists(st.sampled_from([*TRANSIENT, "truncate", None]), max_size=12)
"""Faults of the next requests, in order."""


class FaultyFeed:
    """An httpx.MockTransport handler: the feed's answers, each request first meeting the
    next scheduled fault."""

    def __init__(self, feed: Feed, faults: list[str | None]) -> None:
        self.feed = feed
        self.faults = list(faults)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if fault in TRANSIENT:
            return httpx.Response(int(fault), headers={"Retry-After": "0"}, text="busy")
        status, body = self.feed.answer(str(request.url))
        if fault == "truncate":
            body = body[: len(body) // 2]
        return httpx.Response(status, content=body)


async def read_to_the_end(reader: SequenceReader, latest: int) -> list[Entry]:
    read: list[Entry] = []
    async with contextlib.aclosing(reader.pages(0)) as pages:
        async for page in pages:
            read += page.entries
            if page.caught_up and page.position >= latest:
                return read
    raise AssertionError("the reader stopped before the end of the feed")


@fuzz(60, deadline_ms=20_000)
@given(
    feed=feeds(),
    faults=FAULT_SCHEDULES,
    include_metadata=st.booleans(),
    prefetch=st.integers(1, 4),
)
async def test_every_row_is_read_once_good_or_poison(feed, faults, include_metadata, prefetch):
    transport = StreamingMock(FaultyFeed(feed, faults))
    client = FeedClient(
        "http://dicom.test",
        transport=transport,
        backoff=FAST,
        fallback_after=FALLBACK_AFTER,
    )
    source = FeedSource(client, page_size=feed.page_size, include_metadata=include_metadata)
    reader = SequenceReader(source, prefetch=prefetch, poll_interval=0.001)
    try:
        async with asyncio.timeout(5):
            read = await read_to_the_end(reader, feed.latest)
    finally:
        await source.close()

    good = [entry for entry in read if not entry.poison]
    assert [entry.sequence for entry in good] == sorted(feed.good)
    assert all(entry.raw == feed.good[entry.sequence] for entry in good)
    poison = [entry for entry in read if entry.poison]
    assert sorted(entry.json for entry in poison) == sorted(
        row.body.replace(b"\r", b" ").replace(b"\n", b" ") for row in feed.poison
    )  # each bad row once, its bytes as served (kept on one line)
    assert all(entry.problem for entry in poison)
    assert sorted(entry.sequence for entry in poison if entry.sequence is not None) == sorted(
        row.sequence for row in feed.poison if row.sequence_readable
    )
    positions = [entry.position for entry in read]
    assert positions == sorted(positions)


async def test_a_poison_latest_entry_still_tells_where_the_feed_ends():
    """Regression: a latest entry with a readable sequence but a bad field was retried for
    ever as an unparseable answer, so the bridge never read the feed at all."""
    latest = b'{"sequence":5,"studyInstanceUid":"","action":"Create"}'
    client = FeedClient(
        "http://dicom.test",
        transport=StreamingMock(lambda request: httpx.Response(200, content=latest)),
        backoff=FAST,
    )
    async with client, asyncio.timeout(5):
        entry = await client.latest()
    assert entry.sequence == 5 and entry.poison
