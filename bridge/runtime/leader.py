"""Replicas (`ha:`): one active bridge per feed, by a lease in the shared offset store.

Every replica has an id (host, pid and a random part). A standby tries to `acquire` the
feed's lease every renew interval; the one that gets it is the leader for a term: its
routes run over a `FencedStore`, which passes the term's epoch with every commit, so the
store refuses the commits of a leader whose lease another replica took over (fencing).

The leader renews every renew interval. It holds the lease, by its own monotonic clock,
until `lease_ttl` minus a margin after the start of its last successful renewal (the
store's expiry is at least `lease_ttl` after the store received it). When that time comes
without a renewal (the store unreachable, the process paused), the term ends at once: the
routes stop without committing anything further, and the replica stands by again. A
commit refused for its epoch ends the term the same way. SIGTERM drains the routes as
usual, then releases the lease so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from bridge.config import HaConfig
from bridge.offsets import (
    Fingerprint,
    LeaseLost,
    LeaseStore,
    OffsetStore,
    OffsetStoreError,
    StoredOffset,
)

log = logging.getLogger("bridge.leader")

#: The share of `lease_ttl` a leader gives up early, for clock rates and stopping.
MARGIN = 0.2
#: Seconds a SIGTERMed leader may take to release its lease.
RELEASE_TIMEOUT = 5.0


def replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Term:
    """One tenure as leader: the lease's epoch, and until when it is surely held."""

    def __init__(self, epoch: int, valid_until: float, on_end: Callable[[], None]) -> None:
        self.epoch = epoch
        self.valid_until = valid_until
        self.ended = asyncio.Event()
        self.reason: str | None = None
        self._on_end = on_end

    @property
    def held(self) -> bool:
        return not self.ended.is_set() and time.monotonic() < self.valid_until

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()
            self._on_end()


class FencedStore:
    """The offset store as a leader's routes see it: every commit carries the term's epoch,
    and none starts, or is waited for, once the term ended."""

    def __init__(self, store: OffsetStore, term: Term, replica: Replica) -> None:
        self.store = store
        self.term = term
        self._replica = replica

    async def commit(
        self,
        feed: str,
        sink: str,
        position: str,
        sequence: int | None,
        fingerprint: Fingerprint | None = None,
        epoch: int | None = None,
    ) -> None:
        term = self.term
        if not term.held:
            self._replica.refused += 1
            raise LeaseLost(f"not committed: {term.reason or 'the lease expired'}")
        committing = asyncio.ensure_future(
            self.store.commit(feed, sink, position, sequence, fingerprint, epoch=term.epoch)
        )
        ending = asyncio.ensure_future(term.ended.wait())
        try:
            await asyncio.wait([committing, ending], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
        if not committing.done():
            committing.cancel()
            self._replica.refused += 1
            raise LeaseLost(f"not committed: {term.reason}")
        try:
            committing.result()
        except LeaseLost as exc:
            self._replica.refused += 1
            term.end(str(exc))
            raise

    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        return await self.store.load(feed, sink)

    async def adopt(self, feed: str, legacy: str) -> list[str]:
        return await self.store.adopt(feed, legacy)

    async def list(self, feed: str | None = None) -> list[StoredOffset]:
        return await self.store.list(feed)

    async def delete(self, feed: str, sink: str) -> bool:
        return await self.store.delete(feed, sink)

    async def check(self) -> str:
        return await self.store.check()

    async def close(self) -> None:
        return None  # the pipeline closes the store it shares among terms


class Replica:
    """The lease side of a pipeline under `ha:`: campaigns, terms, renewal, release."""

    def __init__(
        self, store: OffsetStore, feed: str, config: HaConfig, on_change: Callable[[], None]
    ) -> None:
        if not all(hasattr(store, name) for name in ("acquire", "renew", "release", "holder")):
            raise OffsetStoreError("ha: the offset store keeps no leases")
        self.store = store
        self.leases = cast(LeaseStore, store)
        self.feed = feed
        self.id = replica_id()
        self.ttl = config.lease_ttl
        self.interval = config.interval
        self.term: Term | None = None
        self.refused = 0  # commits refused for a lost lease
        self.terms = 0
        self.problem: str | None = None  # why the store cannot be asked, while it cannot
        self._on_change = on_change
        self._holding: asyncio.Task[None] | None = None

    @property
    def leader(self) -> bool:
        return self.term is not None and self.term.held

    @property
    def role(self) -> str:
        return "leader" if self.leader else "standby"

    async def run(self, deliver: Callable[[], Awaitable[bool]], stopped: asyncio.Event) -> None:
        """Stand by, lead while the lease is held, stand by again, until `stopped`.
        `deliver` runs the routes of a term until they stop or the term ends; it returns
        whether the term ended (else the bridge stops: the lease is released at shutdown)."""
        log.info("replica %s: standing by for the lease of feed %r", self.id, self.feed)
        while not stopped.is_set():
            term = await self._campaign(stopped)
            if term is None:
                return
            self.term, self.terms = term, self.terms + 1
            log.info(
                "replica %s: became leader of feed %r (epoch %d)", self.id, self.feed, term.epoch
            )
            self._holding = asyncio.create_task(self._hold(term))
            if not await deliver():
                return
            await self._stop_holding()
            log.info(
                "replica %s: stepped down (%s); standing by", self.id, term.reason or "lease lost"
            )

    def fenced(self) -> FencedStore:
        assert self.term is not None
        return FencedStore(self.store, self.term, self)

    def ended(self) -> bool:
        """The current term ended (its routes must stop now)."""
        return self.term is not None and self.term.ended.is_set()

    async def release(self) -> None:
        """On shutdown: give the lease up if held, so a standby takes over at once."""
        await self._stop_holding()
        term, self.term = self.term, None
        if term is None or not term.held:
            return
        term.end("released")
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                await self.leases.release(self.feed, self.id, term.epoch)
        except (OffsetStoreError, TimeoutError) as exc:
            log.warning("replica %s: could not release the lease (%s): it expires", self.id, exc)
            return
        log.info("replica %s: released the lease of feed %r", self.id, self.feed)

    async def _campaign(self, stopped: asyncio.Event) -> Term | None:
        while not stopped.is_set():
            start = time.monotonic()
            try:
                async with asyncio.timeout(self.interval):
                    epoch = await self.leases.acquire(self.feed, self.id, self.ttl)
            except (OffsetStoreError, TimeoutError) as exc:
                self._trouble(str(exc) or f"no answer within {self.interval:g}s")
            else:
                self._trouble(None)
                if epoch is not None:
                    return Term(epoch, start + self.ttl * (1 - MARGIN), self._on_change)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, start + self.interval - time.monotonic())):
                    await stopped.wait()
        return None

    async def _hold(self, term: Term) -> None:
        """Renew every interval until the term ends; end it when the lease cannot be
        renewed before it expires by this replica's clock."""
        due = time.monotonic() + self.interval
        while not term.ended.is_set():
            await asyncio.sleep(max(0.0, min(due, term.valid_until) - time.monotonic()))
            start = time.monotonic()
            if start >= term.valid_until:
                term.end(f"the lease was not renewed within {self.ttl * (1 - MARGIN):g}s")
                return
            if start < due:
                continue
            try:
                async with asyncio.timeout(term.valid_until - start):
                    await self.leases.renew(self.feed, self.id, term.epoch, self.ttl)
            except LeaseLost as exc:
                term.end(str(exc))
                return
            except TimeoutError:
                continue  # valid_until has passed: ended above
            except OffsetStoreError as exc:
                self._trouble(str(exc))
                due = start + min(1.0, self.interval)
                continue
            self._trouble(None)
            term.valid_until = start + self.ttl * (1 - MARGIN)
            due = start + self.interval

    async def _stop_holding(self) -> None:
        holding, self._holding = self._holding, None
        if holding is not None:
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding

    def _trouble(self, problem: str | None) -> None:
        if problem is not None and problem != self.problem:
            log.warning("replica %s: the lease store: %s", self.id, problem)
        self.problem = problem

    def collect(self) -> Iterator[Metric]:
        """Prometheus families (the replica registers with the telemetry registry)."""
        yield GaugeMetricFamily(
            "dicom_bridge_leader",
            "1 while this replica holds the feed's lease (by its own clock), else 0.",
            value=int(self.leader),
        )
        yield CounterMetricFamily(
            "dicom_bridge_lease_lost",
            "Cursor commits refused because this replica's lease was lost or expired.",
            value=self.refused,
        )
        yield CounterMetricFamily(
            "dicom_bridge_leader_terms", "Times this replica became leader.", value=self.terms
        )

    def details(self) -> dict[str, Any]:
        """For /readyz: the role and the replica's id."""
        return {"role": self.role, "replica": self.id}
