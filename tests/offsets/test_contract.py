"""The offset store contract, over every engine (`conftest.ENGINES`): cursors, and for the
shared stores the lease and the fenced commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.offsets import Fingerprint, LeaseLost, OffsetStore, StoredOffset, open_store
from tests.offsets.conftest import Engine

FEED = "hospital"
CLOCK_SLACK = timedelta(seconds=2)  # a server's clock against ours


async def test_commit_is_an_upsert(store: OffsetStore) -> None:
    assert await store.load(FEED, "archive") is None
    before = datetime.now(UTC) - CLOCK_SLACK
    await store.commit(FEED, "archive", "10", 10)
    await store.commit(FEED, "archive", "25", 25)
    stored = await store.load(FEED, "archive")
    assert isinstance(stored, StoredOffset)
    assert (stored.feed, stored.sink, stored.position, stored.sequence) == (
        FEED,
        "archive",
        "25",
        25,
    )
    assert before <= stored.updated_at <= datetime.now(UTC) + CLOCK_SLACK


async def test_position_is_opaque_sequence_optional_fingerprint_kept(store: OffsetStore) -> None:
    position = '{"window":"2024-05-10T16:12:03.1234567+00:00","after":7}'
    fingerprint = Fingerprint(7, "2024-05-10T16:12:03.1234567+00:00", "1.2.3")
    await store.commit(FEED, "events", position, None, fingerprint)
    stored = await store.load(FEED, "events")
    assert stored is not None
    assert (stored.position, stored.sequence, stored.fingerprint) == (position, None, fingerprint)
    await store.commit(FEED, "events", "8", 8)
    stored = await store.load(FEED, "events")
    assert stored is not None and stored.fingerprint is None


async def test_large_sequences(store: OffsetStore) -> None:
    await store.commit(FEED, "a", str(2**40), 2**40)
    stored = await store.load(FEED, "a")
    assert stored is not None and stored.sequence == 2**40


async def test_list_and_delete(store: OffsetStore) -> None:
    await store.commit(FEED, "b", "2", 2)
    await store.commit(FEED, "a", "1", 1)
    await store.commit("other", "a", "9", 9)
    assert [(o.feed, o.sink) for o in await store.list()] == [
        (FEED, "a"),
        (FEED, "b"),
        ("other", "a"),
    ]
    assert [o.sink for o in await store.list(FEED)] == ["a", "b"]
    assert await store.delete(FEED, "a") is True
    assert await store.delete(FEED, "a") is False
    assert await store.load(FEED, "a") is None
    assert await store.load("other", "a") is not None


async def test_concurrent_commits_land_in_call_order(store: OffsetStore) -> None:
    await asyncio.gather(*(store.commit(FEED, "a", str(n), n) for n in range(1, 51)))
    stored = await store.load(FEED, "a")
    assert stored is not None and stored.sequence == 50


async def test_adopt_moves_the_cursors_of_an_old_key_once(store: OffsetStore) -> None:
    await store.commit("https://old", "a", "5", 5)
    await store.commit("https://old", "b", "6", 6)
    await store.commit(FEED, "b", "60", 60)
    assert await store.adopt(FEED, "https://old") == ["a"]
    assert [(o.sink, o.sequence) for o in await store.list()] == [("a", 5), ("b", 60)]
    assert await store.adopt(FEED, "https://old") == []


async def test_reopen_keeps_cursors(engine: Engine) -> None:
    first = open_store(engine.config())
    await first.commit(FEED, "archive", "42", 42)
    await first.close()
    second = open_store(engine.config())
    try:
        stored = await second.load(FEED, "archive")
        assert stored is not None and stored.sequence == 42
    finally:
        await second.close()


async def test_check_reports_writable(store: OffsetStore) -> None:
    await store.commit(FEED, "a", "1", 1)
    assert "writable, 1 cursor(s)" in await store.check()


# -- the lease (shared stores) ------------------------------------------------------------


@pytest.fixture
async def shared(lease_engine: Engine) -> Any:
    """Two handles on one store: two replicas."""
    first, second = open_store(lease_engine.config()), open_store(lease_engine.config())
    yield first, second
    await first.close()
    await second.close()


async def test_one_holder_at_a_time(shared: Any) -> None:
    one, two = shared
    assert await one.holder(FEED) is None
    epoch = await one.acquire(FEED, "one", 30)
    assert epoch is not None
    assert await two.acquire(FEED, "two", 30) is None
    holder = await two.holder(FEED)
    assert (holder.feed, holder.owner, holder.epoch) == (FEED, "one", epoch)
    assert holder.expires_at > datetime.now(UTC) + timedelta(seconds=20)
    await one.renew(FEED, "one", epoch, 30)
    assert await two.acquire("another feed", "two", 30) is not None  # per feed


async def test_an_expired_lease_is_taken_over_with_a_new_epoch(shared: Any) -> None:
    one, two = shared
    first = await one.acquire(FEED, "one", 0.2)
    await _until(lambda: two.acquire(FEED, "two", 30))
    holder = await one.holder(FEED)
    assert holder.owner == "two" and holder.epoch > first
    with pytest.raises(LeaseLost):
        await one.renew(FEED, "one", first, 30)


async def test_a_released_lease_is_free_at_once(shared: Any) -> None:
    one, two = shared
    epoch = await one.acquire(FEED, "one", 30)
    await two.release(FEED, "two", epoch)  # not its lease: left alone
    assert await two.acquire(FEED, "two", 30) is None
    await one.release(FEED, "one", epoch)
    assert await two.acquire(FEED, "two", 30) == epoch + 1


async def test_every_acquire_is_a_new_epoch(shared: Any) -> None:
    one, _ = shared
    first = await one.acquire(FEED, "one", 30)
    assert await one.acquire(FEED, "one", 30) == first + 1  # its own lease, taken anew


async def test_a_commit_with_a_stale_epoch_is_refused(shared: Any) -> None:
    one, two = shared
    old = await one.acquire(FEED, "one", 0.2)
    await one.commit(FEED, "archive", "10", 10, epoch=old)
    new = await _until(lambda: two.acquire(FEED, "two", 30))
    with pytest.raises(LeaseLost):
        await one.commit(FEED, "archive", "20", 20, epoch=old)
    stored = await two.load(FEED, "archive")
    assert stored is not None and stored.sequence == 10
    await two.commit(FEED, "archive", "15", 15, epoch=new)
    assert (await one.load(FEED, "archive")).sequence == 15
    with pytest.raises(LeaseLost):  # a feed nobody holds
        await one.commit("unheld", "archive", "1", 1, epoch=1)


async def test_a_fenced_commit_is_accepted_after_expiry_until_taken_over(shared: Any) -> None:
    """Expiry alone moves nothing: nobody else delivered, so the holder's progress counts."""
    one, _ = shared
    epoch = await one.acquire(FEED, "one", 0.1)
    async with asyncio.timeout(10):  # the lease expires (by the server's clock, here ours)
        while (await one.holder(FEED)).expires_at > datetime.now(UTC):
            await asyncio.sleep(0.05)
    await one.commit(FEED, "archive", "30", 30, epoch=epoch)
    assert (await one.load(FEED, "archive")).sequence == 30


async def _until(attempt: Any, timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while (result := await attempt()) is None:
            await asyncio.sleep(0.05)
    return result
