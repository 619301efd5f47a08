"""The offset store contract: the cursor rows, their fingerprint, the store protocol, and
the choice of a backend by `offsets.type`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import orjson

if TYPE_CHECKING:
    from bridge.config import OffsetsConfig


class OffsetStoreError(Exception):
    """The store cannot be opened, read or written; the message is one line."""


class LeaseLost(OffsetStoreError):
    """A commit or renewal carried a lease epoch that is no longer the feed's: another
    replica took the lease over (fencing), so this one must stop delivering."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """An entry of the feed as it was read. The service never changes these fields of a
    row, so a feed whose row at `sequence` is absent or differs is not the feed the cursor
    was committed against (it was reset or restored, or the URL names another service)."""

    sequence: int
    timestamp: str
    sop: str

    def encode(self) -> str:
        return orjson.dumps(
            {"sequence": self.sequence, "timestamp": self.timestamp, "sop": self.sop}
        ).decode()

    @classmethod
    def decode(cls, text: str | None) -> Fingerprint | None:
        """None for a cursor stored without one (by an older version)."""
        if not text:
            return None
        value = orjson.loads(text)
        return cls(value["sequence"], value["timestamp"], value["sop"])


@dataclass(frozen=True, slots=True)
class StoredOffset:
    feed: str
    sink: str
    position: str
    sequence: int | None
    updated_at: datetime
    fingerprint: Fingerprint | None = None


@dataclass(frozen=True, slots=True)
class LeaseState:
    """Who holds a feed's lease: a replica id, the epoch (raised on every change of owner)
    and when it expires by the store's clock."""

    feed: str
    owner: str
    epoch: int
    expires_at: datetime


class LeaseStore(Protocol):
    """Exclusive ownership of a feed among replicas (`ha:`), kept in the same engine as the
    cursors so that a commit can be fenced by the epoch in one step."""

    async def acquire(self, feed: str, owner: str, ttl: float) -> int | None:
        """Take the lease if it is free, expired or `owner`'s already, for `ttl` seconds;
        returns its epoch, or None while another replica holds it."""
        ...

    async def renew(self, feed: str, owner: str, epoch: int, ttl: float) -> None:
        """Extend the lease by `ttl` seconds; LeaseLost if it is no longer (owner, epoch)."""
        ...

    async def release(self, feed: str, owner: str, epoch: int) -> None:
        """Give the lease up now (on shutdown) so a standby takes over at once; a lease
        that is no longer (owner, epoch) is left alone."""
        ...

    async def holder(self, feed: str) -> LeaseState | None:
        """The current holder (expired or not), or None when nobody ever held it."""
        ...


class OffsetStore(Protocol):
    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        """The committed cursor, or None when the route has never committed."""
        ...

    async def commit(
        self,
        feed: str,
        sink: str,
        position: str,
        sequence: int | None,
        fingerprint: Fingerprint | None = None,
        epoch: int | None = None,
    ) -> None:
        """Durably replace the cursor (insert or update, atomically). With `epoch` (a
        replica under `ha:`), the write happens only while the feed's lease has that epoch,
        in the same atomic step; LeaseLost otherwise."""
        ...

    async def adopt(self, feed: str, legacy: str) -> list[str]:
        """Move the cursors kept under `legacy` (the key an older version used for this
        feed) to `feed`, unless `feed` has one for that sink already (the legacy row is then
        dropped); returns the sinks whose cursor moved."""
        ...

    async def list(self, feed: str | None = None) -> list[StoredOffset]:
        """All cursors (of one feed), ordered by feed then sink."""
        ...

    async def delete(self, feed: str, sink: str) -> bool:
        """Forget the cursor (the route starts over); False if there was none."""
        ...

    async def check(self) -> str:
        """Verify the store is writable; return a one-line description or raise."""
        ...

    async def close(self) -> None: ...


_BACKENDS = {
    "sqlite": "bridge.offsets.sqlite",
    "azure_blob": "bridge.offsets.azure_blob",
    "postgres": "bridge.offsets.postgres",
}


def open_store(config: OffsetsConfig) -> OffsetStore:
    """Open the store `config` describes; raises OffsetStoreError if it is unusable."""
    opener: Callable[[OffsetsConfig], OffsetStore] = importlib.import_module(
        _BACKENDS[config.type]
    ).open_store
    return opener(config)
