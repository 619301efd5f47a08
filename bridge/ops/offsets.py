"""`dicom-bridge offsets show|set|reset`: the routes' cursors, read and moved.

They answer promptly: the feed is probed once (no retry loop). Moving a cursor while the
bridge runs would be overwritten by its next commit: stop the bridge first (as Kafka Connect
requires a stopped connector). A cursor set is stored with the fingerprint of the entry it
lands on, so a feed reset later is detected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from bridge.config import BridgeConfig
from bridge.delivery.cursor import adopt_legacy_cursors, fingerprint_of
from bridge.feed import FeedError, SequenceReader, TimeWindowReader
from bridge.offsets import Fingerprint, LeaseState, LeaseStore, OffsetStore, open_store
from bridge.ops._probe import PROBE_TIMEOUT, OutOfRange, one_line
from bridge.runtime.wiring import feed_client, feed_lookup


@dataclass
class CursorRow:
    sink: str
    sequence: int | None
    position: str | None
    latest: int | None
    lag: int | None
    updated_at: str | None
    fingerprint: dict[str, Any] | None
    feed: str  # feed.name: the key of the cursors


@contextlib.asynccontextmanager
async def _cursors(config: BridgeConfig) -> AsyncIterator[OffsetStore]:
    """The offset store, its cursors of an older version's keys adopted."""
    store = open_store(config.offsets)
    try:
        await adopt_legacy_cursors(store, config.feed)
        yield store
    finally:
        await store.close()


async def show_offsets(config: BridgeConfig) -> tuple[list[CursorRow], str | None]:
    """Each configured route's cursor, the feed's latest sequence and the lag; the second
    value explains why `latest` is unknown, if it is."""
    latest, problem = None, None
    client = feed_client(config.feed)
    try:
        entry = await asyncio.wait_for(client.probe(), PROBE_TIMEOUT)
        latest = entry.sequence if entry is not None else 0
    except (FeedError, TimeoutError) as exc:
        problem = one_line(exc) or "no answer"
    finally:
        await client.close()
    async with _cursors(config) as store:
        stored = {row.sink: row for row in await store.list(config.feed.key)}
    rows = []
    for sink_config in config.sinks:
        row = stored.get(sink_config.name)
        sequence = row.sequence if row else 0
        lag = max(0, latest - sequence) if latest is not None and sequence is not None else None
        rows.append(
            CursorRow(
                sink_config.name,
                sequence,
                row.position if row else None,
                latest,
                lag,
                str(row.updated_at) if row else None,
                asdict(row.fingerprint) if row and row.fingerprint else None,
                config.feed.key,
            )
        )
    return rows, problem


async def lease_of(config: BridgeConfig) -> LeaseState | None:
    """Who holds the feed's lease (`ha:`), when the store keeps leases."""
    store = open_store(config.offsets)
    try:
        if not hasattr(store, "holder"):
            return None
        leases: LeaseStore = store  # type: ignore[assignment]
        return await leases.holder(config.feed.key)
    finally:
        await store.close()


def as_dicts(rows: list[CursorRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]


async def set_offset(config: BridgeConfig, sink: str, sequence: int, *, force: bool = False) -> str:
    """Move a cursor so that the next entry delivered is the first after `sequence`;
    refused past the feed's latest entry unless `force`."""
    config.route(sink)  # raises naming the routes there are
    if sequence < 0:
        raise ValueError("--sequence must be >= 0")
    if sequence > 0 and not force:
        latest = await _latest_known(config)
        if latest is not None and sequence > latest:
            raise OutOfRange(
                f"--sequence {sequence} is past the feed's latest sequence {latest}: the route "
                "would skip entries not written yet, and at its next start take the feed for "
                "reset; pass --force to set it anyway"
            )
    position, fingerprint, note = await _position_after(config, sequence)
    async with _cursors(config) as store:
        if position is None:  # v2, the beginning
            await store.delete(config.feed.key, sink)
        else:
            text, _ = _reader(config).encode(position)
            await store.commit(config.feed.key, sink, text, sequence, fingerprint)
    return f"sink {sink}: cursor set to sequence {sequence}{note}"


async def _position_after(
    config: BridgeConfig, sequence: int
) -> tuple[Any, Fingerprint | None, str]:
    """The cursor after `sequence`, the fingerprint of the entry it lands on, and a note
    for the operator when there is none. A v2 cursor needs the entry's timestamp."""
    if sequence == 0:
        return _reader(config).initial, None, ""
    client = feed_client(config.feed)
    lookup = feed_lookup(config.feed, client)
    try:
        if config.feed.api_version == "v2":
            entry = await asyncio.wait_for(lookup.at_or_after(sequence), PROBE_TIMEOUT)
            if entry is None or entry.sequence != sequence:
                raise ValueError(f"the feed has no entry with sequence {sequence} to position on")
            return lookup.after(sequence, entry.timestamp), fingerprint_of(entry), ""
        entry = await asyncio.wait_for(lookup.at_or_before(sequence), PROBE_TIMEOUT)
    except (FeedError, TimeoutError) as exc:
        if config.feed.api_version == "v2":
            raise
        reason = one_line(exc) or "no answer"
        return sequence, None, f" (without a fingerprint: {reason}; the bridge takes it on start)"
    finally:
        await client.close()
    return sequence, fingerprint_of(entry), ""


async def _latest_known(config: BridgeConfig) -> int | None:
    """The feed's latest sequence, None when the feed does not answer."""
    client = feed_client(config.feed)
    try:
        entry = await asyncio.wait_for(client.probe(), PROBE_TIMEOUT)
    except (FeedError, TimeoutError):
        return None
    finally:
        await client.close()
    return entry.sequence or 0 if entry is not None else 0


def _reader(config: BridgeConfig) -> Any:
    return TimeWindowReader if config.feed.api_version == "v2" else SequenceReader


async def reset_offset(config: BridgeConfig, sink: str, *, to_latest: bool) -> str:
    """Back to the feed's beginning (the stored cursor is deleted), or to its latest entry."""
    config.route(sink)  # raises naming the routes there are
    if to_latest:
        client = feed_client(config.feed)
        try:
            latest = await asyncio.wait_for(client.probe(), PROBE_TIMEOUT)
        finally:
            await client.close()
        return await set_offset(config, sink, latest.sequence or 0 if latest else 0, force=True)
    async with _cursors(config) as store:
        await store.delete(config.feed.key, sink)
    return f"sink {sink}: cursor reset to the beginning of the feed"
