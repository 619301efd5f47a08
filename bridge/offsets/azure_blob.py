"""Cursors and leases as small JSON blobs in Azure Blob Storage (`offsets.type: azure_blob`).

Layout, under `prefix` in the container: `offsets/<feed>/<sink>.json` per cursor (the names
percent-encoded) and `leases/<feed>.json` per feed under `ha:` (owner, epoch, ttl), as Event
Hubs' blob checkpoint store keeps checkpoints and ownership. Every write is conditional on
the ETag read before it (If-Match, or If-None-Match: * for a new blob), so two writers never
both succeed; transient failures are retried (`_blobs`), and a write that failed in transit
but landed is recognised by its nonce, so a retry never writes an older position over a
newer one.

Lease expiry uses only the service's clock: a lease expires `ttl` seconds after its blob's
Last-Modified, judged against the `Date` of the answer that read it (both whole seconds,
hence one second of margin). Replicas' clocks need not agree; the holder steps down by its
own monotonic clock, measured from before its renewal was sent, so earlier than that.

Fencing (why a stale leader cannot move a cursor, even racing with a take-over). Each
cursor blob carries the epoch of the lease under which it was last written, and a write
with an epoch refuses (LeaseLost) a blob whose epoch is higher. A replica that took the
lease at epoch E' (a CAS on the lease blob) stamps each cursor with E' when its route loads
it at the start of the term (a CAS; a cursor without a blob gets a placeholder stamped E',
read as "no cursor"). Take the old leader's write of that cursor at epoch E < E',
conditional on a version it read:
- if it lands before the new leader's stamp, the stamp (itself conditional) comes after
  it, so the new leader's `load` returns it: it is part of the history before the
  take-over, not a move behind the new leader's back;
- if it would land after the stamp, its condition names a version older than the stamp,
  so the service refuses it; the old leader reads the blob again, finds E' > E and raises
  LeaseLost without writing;
- a commit with an epoch also reads the lease blob first and refuses at once when the
  lease's epoch is another or the lease was released: a leader paused for longer than the
  TTL fails its first commit after resuming, whether or not its cursors were stamped yet.
So once the new leader loaded a cursor, only writes with an epoch >= E' move it. Stamping
at `load` rather than in `acquire` keeps a take-over to two requests (a standby polls with
`acquire`, and it must finish within a renew interval on a slow service too). A lease blob
created anew (first use, or deleted) starts past every epoch the feed's cursors carry. A
`load` that finds a cursor stamped with a later epoch than the one this store acquired
raises LeaseLost: another replica took over between the acquire and the load.

Calls wait out outages of the service once it has answered (`_blobs`); a caller that must
not wait (the leader's renewal, a standby's poll) bounds them with its own timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bridge.core import azure_credential
from bridge.offsets._blobs import MAX_CONFLICTS, Blobs, Found
from bridge.offsets._store import (
    Fingerprint,
    LeaseLost,
    LeaseState,
    OffsetStoreError,
    StoredOffset,
)

if TYPE_CHECKING:
    from bridge.config import AzureBlobOffsetsConfig

log = logging.getLogger("bridge.offsets")
#: Whole-second timestamps (Last-Modified, Date): a lease counts as expired this much later.
CLOCK_GRANULARITY = timedelta(seconds=1)
Change = Callable[[Found | None], dict[str, Any] | None]


class AzureBlobOffsetStore:
    """An `OffsetStore` and a `LeaseStore` on one container."""

    def __init__(self, blobs: Blobs, prefix: str) -> None:
        self.blobs = blobs
        self.prefix = prefix.strip("/")
        self._versions: dict[str, Found] = {}  # the last version of each blob we know
        self._held: dict[str, int] = {}  # feed -> the epoch this store acquired
        self._locks: dict[str, asyncio.Lock] = {}  # asyncio's locks are FIFO

    # -- cursors ---------------------------------------------------------------------------

    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        name = self._cursor(feed, sink)
        held = self._held.get(feed)
        if held is None:
            current = await self.blobs.get(name)
            self._remember(name, current)
        else:  # the barrier of a new leader: older epochs can no longer write this cursor
            current = await self._update(name, _stamp(feed, sink, held), fresh=True)
        return _offset(current)

    async def commit(
        self,
        feed: str,
        sink: str,
        position: str,
        sequence: int | None,
        fingerprint: Fingerprint | None = None,
        epoch: int | None = None,
    ) -> None:
        name = self._cursor(feed, sink)
        async with self._lock(name):  # one commit of a cursor at a time, in call order
            await self._commit(name, feed, sink, position, sequence, fingerprint, epoch)

    async def _commit(
        self,
        name: str,
        feed: str,
        sink: str,
        position: str,
        sequence: int | None,
        fingerprint: Fingerprint | None,
        epoch: int | None,
    ) -> None:
        if epoch is not None:
            await self._check_lease(feed, epoch)

        def change(current: Found | None) -> dict[str, Any]:
            stored = _epoch(current)
            if epoch is not None and stored is not None and stored > epoch:
                raise _stale(feed, epoch, stored)
            return {
                "feed": feed,
                "sink": sink,
                "position": position,
                "sequence": sequence,
                "fingerprint": fingerprint and fingerprint.encode(),
                "epoch": epoch if epoch is not None else stored,
            }

        await self._update(name, change)

    async def adopt(self, feed: str, legacy: str) -> list[str]:
        moved = []
        for offset in await self.list(legacy):
            took: list[bool] = []

            def take(
                current: Found | None, offset: StoredOffset = offset, took: list[bool] = took
            ) -> dict[str, Any] | None:
                took[:] = [_offset(current) is None]
                if not took[0]:
                    return None  # the feed has a cursor for this sink already: keep it
                return {**_body(offset), "feed": feed, "epoch": _epoch(current)}

            await self._update(self._cursor(feed, offset.sink), take)
            if took[0]:
                moved.append(offset.sink)
            await self.delete(legacy, offset.sink)
        return moved

    async def list(self, feed: str | None = None) -> list[StoredOffset]:
        folder = f"{self.prefix}/offsets/" + ("" if feed is None else f"{quote(feed, safe='')}/")
        names = await self.blobs.names(folder)
        found = await asyncio.gather(*(self.blobs.get(name) for name in names))
        offsets = [offset for offset in map(_offset, found) if offset is not None]
        return sorted(offsets, key=lambda offset: (offset.feed, offset.sink))

    async def delete(self, feed: str, sink: str) -> bool:
        """Forget the cursor; a cursor written under a lease becomes a placeholder keeping
        its epoch (so a stale leader cannot write it back)."""
        name = self._cursor(feed, sink)
        for _ in range(MAX_CONFLICTS):
            current = await self.blobs.get(name)
            if _offset(current) is None:
                return False
            assert current is not None
            epoch = _epoch(current)
            if epoch is not None:
                written = await self.blobs.put(name, _placeholder(feed, sink, epoch), current.etag)
                done = written is not None
            else:
                done = await self.blobs.delete(name, current.etag)
            if done:
                self._versions.pop(name, None)
                return True
        raise OffsetStoreError(f"offset store {self.blobs.where}: {name}: too many conflicts")

    async def check(self) -> str:
        cursors = await self.list()
        probe = f"{self.prefix}/probe.json"
        current = await self.blobs.get(probe)
        written = await self.blobs.put(probe, {"probe": True}, _etag(current))
        if written is not None:
            await self.blobs.delete(probe, written.etag)
        return f"{self.blobs.where}: writable, {len(cursors)} cursor(s)"

    async def close(self) -> None:
        await self.blobs.close()

    # -- leases ----------------------------------------------------------------------------

    async def acquire(self, feed: str, owner: str, ttl: float) -> int | None:
        """Two requests (read, conditional write): a standby polls with it and a new leader
        must get it done well within a renew interval. The cursors are fenced by `load`."""
        name = self._lease(feed)
        current = await self.blobs.get(name)
        if current is None:  # new, or deleted: go past every epoch a cursor was written under
            epoch = 1 + await self._newest_epoch(feed)
        else:
            body = current.body
            ours = body.get("owner") == owner and not body.get("released")
            if not ours and not _expired(current):
                return None
            epoch = int(body["epoch"]) + 1  # every term a new epoch, even a holder's own
        lease = {"feed": feed, "owner": owner, "epoch": epoch, "ttl": ttl, "released": False}
        written = await self.blobs.put(name, lease, _etag(current))
        if written is None:
            return None  # another replica was quicker
        self._versions[name] = written
        self._held[feed] = epoch
        return epoch

    async def renew(self, feed: str, owner: str, epoch: int, ttl: float) -> None:
        name = self._lease(feed)
        current = self._versions.get(name)
        for _ in range(2):  # the version we know, then the one the service has
            if current is None or not _held_by(current, owner, epoch):
                current = await self.blobs.get(name)
                if current is None or not _held_by(current, owner, epoch):
                    self._held.pop(feed, None)
                    raise _lost(feed, epoch, current)
            lease = {"feed": feed, "owner": owner, "epoch": epoch, "ttl": ttl, "released": False}
            written = await self.blobs.put(name, lease, current.etag)
            if written is not None:
                self._versions[name] = written
                return
            current = None
        raise _lost(feed, epoch, await self.blobs.get(name))

    async def release(self, feed: str, owner: str, epoch: int) -> None:
        name = self._lease(feed)
        self._held.pop(feed, None)
        current = await self.blobs.get(name)
        if current is None or not _held_by(current, owner, epoch):
            return
        lease = {**current.body, "ttl": 0, "released": True}
        lease.pop("writer", None)
        self._remember(name, await self.blobs.put(name, lease, current.etag))

    async def holder(self, feed: str) -> LeaseState | None:
        current = await self.blobs.get(self._lease(feed))
        if current is None:
            return None
        body = current.body
        return LeaseState(feed, str(body["owner"]), int(body["epoch"]), _expires_at(current))

    # -- the parts -------------------------------------------------------------------------

    def _cursor(self, feed: str, sink: str) -> str:
        return f"{self.prefix}/offsets/{quote(feed, safe='')}/{quote(sink, safe='')}.json"

    def _lease(self, feed: str) -> str:
        return f"{self.prefix}/leases/{quote(feed, safe='')}.json"

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _remember(self, name: str, current: Found | None) -> None:
        if current is None:
            self._versions.pop(name, None)
        else:
            self._versions[name] = current

    async def _update(self, name: str, change: Change, *, fresh: bool = False) -> Found | None:
        """Write `change(current)` over the current version, compare-and-swap, until no
        other writer comes between; `change` returning None means nothing to write. Starts
        from the version we know (unless `fresh`): a wrong guess costs one refused write."""
        current = None if fresh else self._versions.get(name)
        known = current is not None
        for _ in range(MAX_CONFLICTS):
            if not known:
                current = await self.blobs.get(name)
            body = change(current)
            if body is None:
                self._remember(name, current)
                return current
            written = await self.blobs.put(name, body, _etag(current))
            if written is not None:
                self._versions[name] = written
                return written
            known = False
        raise OffsetStoreError(f"offset store {self.blobs.where}: {name}: too many conflicts")

    async def _check_lease(self, feed: str, epoch: int) -> None:
        current = await self.blobs.get(self._lease(feed))
        if current is None or current.body.get("released") or current.body["epoch"] != epoch:
            self._held.pop(feed, None)
            raise _lost(feed, epoch, current)

    async def _newest_epoch(self, feed: str) -> int:
        folder = f"{self.prefix}/offsets/{quote(feed, safe='')}/"
        names = await self.blobs.names(folder)
        found = await asyncio.gather(*(self.blobs.get(name) for name in names))
        return max((epoch for epoch in map(_epoch, found) if epoch is not None), default=0)


def _stamp(feed: str, sink: str, epoch: int) -> Change:
    """The change raising a cursor blob's epoch to `epoch` (a placeholder when absent)."""

    def stamp(current: Found | None) -> dict[str, Any] | None:
        stored = _epoch(current)
        if stored is not None and stored > epoch:
            raise _stale(feed, epoch, stored)
        if stored == epoch:
            return None
        if current is None:
            return _placeholder(feed, sink, epoch)
        body = {**current.body, "epoch": epoch}
        body.pop("writer", None)
        return body

    return stamp


def _etag(current: Found | None) -> str | None:
    return None if current is None else current.etag


def _placeholder(feed: str, sink: str, epoch: int) -> dict[str, Any]:
    return {"feed": feed, "sink": sink, "position": None, "epoch": epoch}


def _epoch(current: Found | None) -> int | None:
    value = None if current is None else current.body.get("epoch")
    return None if value is None else int(value)


def _offset(current: Found | None) -> StoredOffset | None:
    if current is None or current.body.get("position") is None:
        return None
    body = current.body
    return StoredOffset(
        body["feed"],
        body["sink"],
        body["position"],
        body.get("sequence"),
        current.last_modified,
        Fingerprint.decode(body.get("fingerprint")),
    )


def _body(offset: StoredOffset) -> dict[str, Any]:
    return {
        "feed": offset.feed,
        "sink": offset.sink,
        "position": offset.position,
        "sequence": offset.sequence,
        "fingerprint": offset.fingerprint and offset.fingerprint.encode(),
    }


def _expires_at(lease: Found) -> datetime:
    ttl = 0.0 if lease.body.get("released") else float(lease.body.get("ttl", 0))
    return lease.last_modified + timedelta(seconds=ttl)


def _expired(lease: Found) -> bool:
    """By the service's clock (its Date against the blob's Last-Modified)."""
    if lease.body.get("released"):
        return True
    return lease.date >= _expires_at(lease) + CLOCK_GRANULARITY


def _held_by(lease: Found, owner: str, epoch: int) -> bool:
    body = lease.body
    return body.get("owner") == owner and body.get("epoch") == epoch and not body.get("released")


def _lost(feed: str, epoch: int, lease: Found | None) -> LeaseLost:
    if lease is None:
        now = "has no lease"
    elif lease.body.get("released"):
        now = f"lease epoch {lease.body['epoch']} was released"
    else:
        now = f"lease is epoch {lease.body['epoch']}, held by {lease.body['owner']}"
    return LeaseLost(f"feed {feed}: lease epoch {epoch} is stale (the feed's {now})")


def _stale(feed: str, epoch: int, stored: int) -> LeaseLost:
    return LeaseLost(
        f"feed {feed}: lease epoch {epoch} is stale (a cursor was written under epoch {stored})"
    )


def open_store(config: AzureBlobOffsetsConfig) -> AzureBlobOffsetStore:
    from azure.storage.blob.aio import BlobServiceClient

    options: dict[str, Any] = {
        "retry_total": 0,  # `_blobs` retries, with the bridge's backoff
        "connection_timeout": config.timeout,
        "read_timeout": config.timeout,
    }
    credential = None
    if config.connection_string is not None:
        text = config.connection_string.get_secret_value()
        try:
            service = BlobServiceClient.from_connection_string(text, **options)
        except ValueError:
            raise OffsetStoreError(
                "offset store azure_blob: connection_string is not usable (not shown)"
            ) from None
    else:
        assert config.account_url is not None  # the config requires one of the two
        credential = azure_credential(**config.credential_options())
        service = BlobServiceClient(config.account_url, credential=credential, **options)
    container = service.get_container_client(config.container)

    async def close() -> None:
        await service.close()
        if credential is not None:
            await credential.close()

    where = f"azure_blob {container.primary_hostname}/{config.container}"
    first_contact = max(30.0, 3 * config.timeout)
    blobs = Blobs(container, where, on_close=close, first_contact=first_contact)
    return AzureBlobOffsetStore(blobs, config.prefix)
