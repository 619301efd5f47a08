"""The lease side of a replica (`bridge.runtime.leader`) over a store whose answers the test
controls: terms end on the replica's own clock, fenced commits, release."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from bridge.config import HaConfig
from bridge.offsets import Fingerprint, LeaseLost, LeaseState, OffsetStoreError
from bridge.offsets.memory import MemoryOffsetStore
from bridge.runtime.leader import MARGIN, Replica

FEED = "hospital"


class LeasedMemoryStore(MemoryOffsetStore):
    """Cursors in memory, a lease per feed; `stall` makes every call hang (a store that
    went away), `fail` makes them raise."""

    def __init__(self) -> None:
        super().__init__()
        self.lease: LeaseState | None = None
        self.stall = asyncio.Event()  # set: answers again
        self.stall.set()
        self.fail: str | None = None
        self.commits: list[tuple[str, int | None]] = []

    async def _gate(self) -> None:
        await self.stall.wait()
        if self.fail:
            raise OffsetStoreError(self.fail)

    async def acquire(self, feed: str, owner: str, ttl: float) -> int | None:
        await self._gate()
        now = datetime.now(UTC)
        lease = self.lease
        if lease is not None and lease.owner != owner and lease.expires_at > now:
            return None
        epoch = (lease.epoch if lease else 0) + 1
        self.lease = LeaseState(feed, owner, epoch, now + timedelta(seconds=ttl))
        return epoch

    async def renew(self, feed: str, owner: str, epoch: int, ttl: float) -> None:
        await self._gate()
        lease = self.lease
        if lease is None or (lease.owner, lease.epoch) != (owner, epoch):
            raise LeaseLost("taken over")
        self.lease = LeaseState(feed, owner, epoch, datetime.now(UTC) + timedelta(seconds=ttl))

    async def release(self, feed: str, owner: str, epoch: int) -> None:
        lease = self.lease
        if lease is not None and (lease.owner, lease.epoch) == (owner, epoch):
            self.lease = LeaseState(feed, owner, epoch, datetime.now(UTC))

    async def holder(self, feed: str) -> LeaseState | None:
        return self.lease

    async def commit(
        self,
        feed: str,
        sink: str,
        position: str,
        sequence: int | None,
        fingerprint: Fingerprint | None = None,
        epoch: int | None = None,
    ) -> None:
        await self._gate()
        if epoch is not None and (self.lease is None or self.lease.epoch != epoch):
            raise LeaseLost("stale epoch")
        self.commits.append((position, epoch))
        await super().commit(feed, sink, position, sequence, fingerprint)


def _replica(store: LeasedMemoryStore, ttl: float = 1.0) -> Replica:
    return Replica(store, FEED, HaConfig(lease_ttl=ttl, renew_interval=ttl / 4), lambda: None)


async def _lead(replica: Replica) -> asyncio.Task[None]:
    """Run the replica until its first term ends (the test's `deliver` waits for that)."""
    stopped = asyncio.Event()

    async def deliver() -> bool:
        assert replica.term is not None
        await replica.term.ended.wait()
        stopped.set()
        return True

    task = asyncio.create_task(replica.run(deliver, stopped))
    async with asyncio.timeout(5):
        while not replica.leader:
            await asyncio.sleep(0.01)
    return task


async def test_a_leader_renews_and_keeps_the_lease() -> None:
    store = LeasedMemoryStore()
    replica = _replica(store, ttl=1.0)
    task = await _lead(replica)
    await asyncio.sleep(2.5)  # several TTLs: held only by renewing
    assert replica.leader and replica.role == "leader"
    assert store.lease is not None and store.lease.expires_at > datetime.now(UTC)
    task.cancel()


async def test_a_store_that_hangs_ends_the_term_before_the_lease_could_lapse() -> None:
    store = LeasedMemoryStore()
    replica = _replica(store, ttl=1.0)
    task = await _lead(replica)
    assert replica.term is not None
    store.stall.clear()
    hung_at = time.monotonic()
    async with asyncio.timeout(5):
        await replica.term.ended.wait()
    # Renewed at most one interval before the hang: the term ends within TTL x (1 - MARGIN).
    assert time.monotonic() - hung_at <= 1.0 * (1 - MARGIN) + 0.05
    assert store.lease is not None and store.lease.expires_at > datetime.now(UTC)
    assert not replica.leader and "not renewed" in (replica.term.reason or "")
    store.stall.set()
    await task


async def test_a_lease_taken_over_ends_the_term_at_the_next_renewal() -> None:
    store = LeasedMemoryStore()
    replica = _replica(store, ttl=1.0)
    task = await _lead(replica)
    assert store.lease is not None
    store.lease = LeaseState(FEED, "another", store.lease.epoch + 1, datetime.now(UTC))
    await task
    assert replica.term is not None and replica.term.reason == "taken over"


async def test_fenced_commits_carry_the_epoch_and_stop_with_the_term() -> None:
    store = LeasedMemoryStore()
    replica = _replica(store, ttl=1.0)
    task = await _lead(replica)
    fenced = replica.fenced()
    epoch = fenced.term.epoch
    await fenced.commit(FEED, "a", "1", 1)
    assert store.commits == [("1", epoch)]
    # A commit in flight when the term ends is given up (and counted), not waited for.
    store.stall.clear()
    committing = asyncio.create_task(fenced.commit(FEED, "a", "2", 2))
    with pytest.raises(LeaseLost):
        async with asyncio.timeout(5):
            await committing
    assert replica.refused == 1
    with pytest.raises(LeaseLost):  # and none starts after
        await fenced.commit(FEED, "a", "3", 3)
    assert replica.refused == 2
    store.stall.set()
    await task
    assert store.commits == [("1", epoch)]


async def test_a_commit_refused_by_the_store_ends_the_term() -> None:
    store = LeasedMemoryStore()
    replica = _replica(store, ttl=5.0)
    task = await _lead(replica)
    fenced = replica.fenced()
    assert store.lease is not None
    store.lease = LeaseState(FEED, "another", store.lease.epoch + 1, store.lease.expires_at)
    with pytest.raises(LeaseLost):
        await fenced.commit(FEED, "a", "1", 1)
    await asyncio.wait_for(task, 1)  # at once, not at the next renewal
    assert replica.refused == 1 and not replica.leader


async def test_a_standby_waits_for_a_held_lease_and_reports_a_failing_store() -> None:
    store = LeasedMemoryStore()
    store.lease = LeaseState(FEED, "another", 7, datetime.now(UTC) + timedelta(seconds=60))
    replica = _replica(store, ttl=1.0)
    stopped = asyncio.Event()
    task = asyncio.create_task(replica.run(lambda: asyncio.sleep(0, True), stopped))
    await asyncio.sleep(0.6)
    assert replica.role == "standby" and replica.problem is None
    store.fail = "connection refused"
    async with asyncio.timeout(5):
        while replica.problem is None:
            await asyncio.sleep(0.01)
    assert replica.problem == "connection refused"
    stopped.set()
    await asyncio.wait_for(task, 1)
    assert replica.terms == 0


async def test_release_frees_the_lease_for_a_standby_at_once() -> None:
    store = LeasedMemoryStore()
    replica = _replica(store, ttl=30.0)
    task = await _lead(replica)
    await replica.release()
    assert store.lease is not None and store.lease.expires_at <= datetime.now(UTC)
    assert await store.acquire(FEED, "standby", 30) is not None
    await asyncio.wait_for(task, 1)


def test_a_store_without_leases_is_refused() -> None:
    with pytest.raises(OffsetStoreError, match="keeps no leases"):
        Replica(MemoryOffsetStore(), FEED, HaConfig(), lambda: None)
