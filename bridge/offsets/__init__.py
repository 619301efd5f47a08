"""Durable cursors, one per (feed, sink): where each route resumes after a restart.

A store keeps one row per (feed, sink), the feed being `feed.name`: the position (opaque
text: the pipeline encodes v1 sequences and v2 window positions), the sequence it
corresponds to when there is one (for lag and `offsets show`), the fingerprint of the feed's
entry at or before it (to tell a reset service from the one the cursor was committed
against), and when it was written. `commit` is an atomic upsert; it is also what
`offsets set` uses. Backends live in submodules, one per `offsets.type`, each with an
`open_store(config)`; adding one (postgres, redis, kafka) is one line in `_BACKENDS`.
"""

from bridge.offsets._store import (
    Fingerprint,
    LeaseLost,
    LeaseState,
    LeaseStore,
    OffsetStore,
    OffsetStoreError,
    StoredOffset,
    open_store,
)

__all__ = [
    "Fingerprint",
    "LeaseLost",
    "LeaseState",
    "LeaseStore",
    "OffsetStore",
    "OffsetStoreError",
    "StoredOffset",
    "open_store",
]
