"""Durable cursors, one per (feed, sink): where each route resumes after a restart.

A store keeps one row per (feed, sink): the position (opaque text: the pipeline encodes v1
sequences and v2 window positions), the sequence it corresponds to when there is one (for
lag and `offsets show`), and when it was written. `commit` is an atomic upsert; it is also
what `offsets set` uses. Backends live in submodules, one per `offsets.type`, each with an
`open_store(config)`; adding one (postgres, redis, kafka) is one line in `_BACKENDS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bridge.config import OffsetsConfig


class OffsetStoreError(Exception):
    """The store cannot be opened, read or written; the message is one line."""


@dataclass(frozen=True, slots=True)
class StoredOffset:
    feed: str
    sink: str
    position: str
    sequence: int | None
    updated_at: datetime


class OffsetStore(Protocol):
    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        """The committed cursor, or None when the route has never committed."""
        ...

    async def commit(self, feed: str, sink: str, position: str, sequence: int | None) -> None:
        """Durably replace the cursor (insert or update, atomically)."""
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
}


def open_store(config: OffsetsConfig) -> OffsetStore:
    """Open the store `config` describes; raises OffsetStoreError if it is unusable."""
    return importlib.import_module(_BACKENDS[config.type]).open_store(config)


__all__ = ["OffsetStore", "OffsetStoreError", "StoredOffset", "open_store"]
