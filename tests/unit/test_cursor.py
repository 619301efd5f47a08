"""A route's cursor against an in-memory feed (httpx.MockTransport): fingerprints, reset
detection on start and while running, adoption of older cursors, start positions."""

from __future__ import annotations

import asyncio
import logging

import httpx
import orjson
import pytest

from bridge.core.backoff import Backoff
from bridge.core.entry import parse_entry
from bridge.delivery.cursor import Cursor, FeedLookup, RouteFailed, same_entry
from bridge.feed import (
    FeedClient,
    FeedResetError,
    Page,
    SequenceReader,
    TimeWindowReader,
    from_ticks,
    to_ticks,
)
from bridge.offsets import Fingerprint
from bridge.offsets.memory import MemoryOffsetStore
from tests.factories import entry_json
from tests.peers.feed_mock import StreamingMock

BASE = to_ticks("2024-05-10T16:00:00+00:00")
LOG = logging.LoggerAdapter(logging.getLogger("test"), {"sink": "a"})


def rows(sequences, *, seed: str = "a", same_time: bool = False) -> list[dict]:
    """Entries with distinct timestamps (or one shared, as a bulk delete writes them)."""
    return [
        entry_json(
            n,
            sopInstanceUid=f"{seed}.{n}",
            timestamp=from_ticks(BASE + (0 if same_time else n * 10_000_000)),
        )
        for n in sequences
    ]


class Feed:
    """A change feed in memory with v1 windows, v2 time windows and latest."""

    def __init__(self, entries: list[dict]) -> None:
        self.entries = entries
        self.requests = 0

    def client(self, version: str) -> FeedClient:
        return FeedClient(
            "http://dicom.test",
            version,
            transport=StreamingMock(self.answer),
            backoff=Backoff(0.001, 0.002),
        )

    def lookup(self, version: str) -> FeedLookup:
        return FeedLookup(self.client(version), lambda: self.client("v1"))

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        params = request.url.params
        v2 = request.url.path.startswith("/v2/")
        order = sorted(self.entries, key=lambda e: (to_ticks(e["timestamp"]), e["sequence"]))
        if request.url.path.endswith("/latest"):
            if not self.entries:
                return httpx.Response(204)
            return httpx.Response(200, content=orjson.dumps((order if v2 else self.entries)[-1]))
        offset, limit = int(params["offset"]), int(params["limit"])
        if v2:
            start, end = to_ticks(params["startTime"]), to_ticks(params["endTime"])
            page = [e for e in order if start <= to_ticks(e["timestamp"]) < end]
            page = page[offset : offset + limit]
        else:
            page = [e for e in self.entries if offset < e["sequence"] <= offset + limit]
        return httpx.Response(200, content=orjson.dumps(page))


def cursor_for(store, feed: Feed | None, version="v1", start="earliest") -> Cursor:
    reader = TimeWindowReader if version == "v2" else SequenceReader
    lookup = feed.lookup(version) if feed is not None else None
    return Cursor(store, "dicom.test", "a", reader, lookup, start, LOG)


def page(entries: list[dict]) -> Page:
    parsed = [parse_entry(e) for e in entries]
    for entry in parsed:
        entry.position = entry.sequence
    return Page(parsed, parsed[-1].position, False, 0)


def fingerprint(entry: dict) -> Fingerprint:
    return Fingerprint(entry["sequence"], entry["timestamp"], entry["sopInstanceUid"])


async def reset_after_a_check(store) -> tuple[Cursor, asyncio.Task[None]]:
    """A cursor committed at 10 and checked against the feed while running; then the feed is
    reset and its new history (grown past 10) read up to 30, not yet committed."""
    feed = Feed(rows(range(1, 21)))
    cursor = cursor_for(store, feed)
    cursor.note(page(feed.entries[:10]))
    await cursor.commit(10)
    watching = asyncio.create_task(cursor.watch())
    while feed.requests < 1:  # the anchor, cursor 10, was checked
        await asyncio.sleep(0.005)
    feed.entries = rows(range(1, 41), seed="b")
    cursor.note(page(feed.entries[10:30]))
    return cursor, watching


def test_entries_are_compared_by_instant_not_by_spelling() -> None:
    [served] = rows([7])
    stored = fingerprint(served)
    assert same_entry(stored, parse_entry(served))
    respelled = {**served, "timestamp": served["timestamp"].replace("+00:00", "Z")}
    assert same_entry(stored, parse_entry(respelled))
    assert not same_entry(stored, parse_entry({**served, "sopInstanceUid": "other"}))
    assert not same_entry(stored, parse_entry({**served, "timestamp": from_ticks(BASE)}))
    assert not same_entry(stored, None)


async def test_a_commit_keeps_the_fingerprint_of_the_last_entry_reached() -> None:
    store = MemoryOffsetStore()
    cursor = cursor_for(store, None)
    first, second = rows([1, 2, 3]), rows([4, 5, 6])
    cursor.note(page(first))
    cursor.note(page(second))
    await cursor.commit(2)
    assert (await store.load("dicom.test", "a")).fingerprint is None  # page 1 not reached
    await cursor.commit(5)
    assert (await store.load("dicom.test", "a")).fingerprint == fingerprint(first[-1])
    await cursor.commit(100)  # a window end past a gap
    stored = await store.load("dicom.test", "a")
    assert (stored.position, stored.fingerprint) == ("100", fingerprint(second[-1]))


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_reset_feed_is_found_on_start_and_nothing_is_stored(version) -> None:
    old, new = rows(range(1, 11)), rows(range(1, 31), seed="b")
    store = MemoryOffsetStore()
    cursor = cursor_for(store, Feed(old), version)
    position = cursor.lookup.after(10, old[9]["timestamp"])
    await store.commit("dicom.test", "a", *cursor.reader.encode(position), fingerprint(old[9]))
    stored, loaded = await cursor.load()
    assert await cursor.resolve(stored, loaded) == position  # the same feed, grown or not

    replaced = cursor_for(store, Feed(new), version)
    stored, loaded = await replaced.load()
    with pytest.raises(FeedResetError, match=r"no longer holds the entry .* sequence 10 at"):
        await replaced.resolve(stored, loaded)
    assert await store.load("dicom.test", "a") == stored


async def test_a_reset_while_running_leaves_the_last_verified_cursor_stored(
    monkeypatch,
) -> None:
    monkeypatch.setattr("bridge.delivery.cursor.VERIFY_INTERVAL", 0.01)
    store = MemoryOffsetStore()
    cursor, watching = await reset_after_a_check(store)
    await cursor.commit(30)  # entries of the new feed, read before the check
    with pytest.raises(FeedResetError, match="reset or restored"):
        await asyncio.wait_for(watching, 5)
    stored = await store.load("dicom.test", "a")
    assert (stored.sequence, stored.fingerprint.sop) == (10, "a.10")
    await cursor.commit(40)
    assert (await store.load("dicom.test", "a")).sequence == 10  # frozen


async def test_a_commit_made_while_a_check_reads_the_feed_is_not_taken_as_verified(
    monkeypatch,
) -> None:
    """The check read the intact feed; the feed was reset and the route committed entries
    of the new one before the answer came back: that commit is checked next, not trusted."""
    monkeypatch.setattr("bridge.delivery.cursor.VERIFY_INTERVAL", 0.01)
    feed = Feed(rows(range(1, 21)))
    store = MemoryOffsetStore()
    cursor = cursor_for(store, feed)
    cursor.note(page(feed.entries[:10]))
    await cursor.commit(10)
    read, answer = asyncio.Event(), asyncio.Event()
    find = cursor.lookup.find

    async def find_slowly(sequence: int, timestamp: str):
        found = await find(sequence, timestamp)
        read.set()
        await answer.wait()
        return found

    monkeypatch.setattr(cursor.lookup, "find", find_slowly)
    watching = asyncio.create_task(cursor.watch())
    await asyncio.wait_for(read.wait(), 5)  # the anchor, cursor 10, read from the intact feed
    feed.entries = rows(range(1, 41), seed="b")
    cursor.note(page(feed.entries[10:30]))
    await cursor.commit(30)
    answer.set()
    with pytest.raises(FeedResetError, match="reset or restored"):
        await asyncio.wait_for(watching, 5)
    assert (await store.load("dicom.test", "a")).sequence == 10


class SlowStore(MemoryOffsetStore):
    """A store whose commits of a sequence in `held` wait until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.held: set[int] = set()
        self.writing, self.release = asyncio.Event(), asyncio.Event()

    async def commit(self, feed, sink, position, sequence, fingerprint=None, epoch=None):
        if sequence in self.held:
            self.writing.set()
            await self.release.wait()
        await super().commit(feed, sink, position, sequence, fingerprint)


async def test_a_reset_found_while_a_commit_is_in_flight_puts_the_anchor_back_over_it(
    monkeypatch,
) -> None:
    """The route's commit of new-feed entries was on its way to the store when the check
    found the reset: it must not land over the cursor the check puts back."""
    monkeypatch.setattr("bridge.delivery.cursor.VERIFY_INTERVAL", 0.01)
    store = SlowStore()
    cursor, watching = await reset_after_a_check(store)
    store.held.add(30)
    committing = asyncio.create_task(cursor.commit(30))
    await asyncio.wait_for(store.writing.wait(), 5)
    while not cursor.frozen:  # the next check found the reset
        await asyncio.sleep(0.005)
    store.release.set()
    await asyncio.wait_for(committing, 5)
    with pytest.raises(FeedResetError, match="reset or restored"):
        await asyncio.wait_for(watching, 5)
    assert (await store.load("dicom.test", "a")).sequence == 10


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_cursor_stored_without_a_fingerprint_adopts_the_feeds_entry(
    version,
) -> None:
    feed = Feed(rows(range(1, 11)))
    store = MemoryOffsetStore()
    cursor = cursor_for(store, feed, version)
    position = cursor.lookup.after(7, feed.entries[6]["timestamp"])
    await store.commit("dicom.test", "a", *cursor.reader.encode(position))
    stored, loaded = await cursor.load()
    assert await cursor.resolve(stored, loaded) == position
    assert (await store.load("dicom.test", "a")).fingerprint == fingerprint(feed.entries[6])


async def test_v2_finds_a_row_among_many_with_its_timestamp() -> None:
    feed = Feed(rows(range(1, 451), same_time=True))  # one bulk delete
    lookup = feed.lookup("v2")
    found = await lookup.find(430, feed.entries[0]["timestamp"].replace("+00:00", "Z"))
    assert found is not None and found.sop == "a.430"
    assert await lookup.find(451, feed.entries[0]["timestamp"]) is None


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_start_latest_commits_the_latest_entry_at_once(version) -> None:
    feed = Feed(rows(range(1, 51)))
    store = MemoryOffsetStore()
    cursor = cursor_for(store, feed, version, start="latest")
    position = await cursor.resolve(None, cursor.reader.initial)
    assert position == cursor.lookup.after(50, feed.entries[-1]["timestamp"])
    stored = await store.load("dicom.test", "a")
    assert (stored.sequence, stored.fingerprint) == (50, fingerprint(feed.entries[-1]))

    empty = cursor_for(MemoryOffsetStore(), Feed([]), version, start="latest")
    assert await empty.resolve(None, empty.reader.initial) == empty.reader.initial


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_start_at_a_sequence_delivers_from_it(version) -> None:
    feed = Feed(rows([*range(1, 20), *range(25, 40)]))  # a gap: 20..24
    store = MemoryOffsetStore()
    cursor = cursor_for(store, feed, version, start=22)
    position = await cursor.resolve(None, cursor.reader.initial)
    assert position == (
        cursor.lookup.before(25, feed.entries[19]["timestamp"]) if version == "v2" else 21
    )
    assert (await store.load("dicom.test", "a")).fingerprint == fingerprint(feed.entries[18])

    beyond = cursor_for(MemoryOffsetStore(), feed, version, start=60)
    with pytest.raises(RouteFailed, match="start: 60"):
        await beyond.resolve(None, beyond.reader.initial)


async def test_an_entry_that_does_not_parse_now_is_not_taken_for_a_reset() -> None:
    feed = Feed(rows(range(1, 11)))
    store = MemoryOffsetStore()
    cursor = cursor_for(store, feed)
    await store.commit("dicom.test", "a", "10", 10, fingerprint(feed.entries[9]))
    feed.entries[9] = {**feed.entries[9], "studyInstanceUid": None}
    stored, position = await cursor.load()
    assert await cursor.resolve(stored, position) == 10
    assert not cursor.frozen and cursor._anchor.sequence == 10  # checked again later
