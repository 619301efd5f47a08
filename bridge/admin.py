"""Operator commands that do not run the bridge: `check` and `offsets show|set|reset`.

They answer promptly: the feed is probed once (no retry loop) and each sink check has a
deadline. Moving a cursor while the bridge runs would be overwritten by its next commit:
stop the bridge first (as Kafka Connect requires a stopped connector).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

from bridge.config import BridgeConfig
from bridge.feed import Entry, FeedClient, FeedError, SequenceReader, TimePosition, TimeWindowReader
from bridge.feed._timestamps import to_ticks
from bridge.offsets import open_store
from bridge.pipeline import auth_provider, feed_client, feed_key
from sinks import create_sink

CHECK_TIMEOUT = 15.0


@dataclass
class Probe:
    ok: bool
    component: str
    detail: str


async def check(config: BridgeConfig) -> list[Probe]:
    """Reach the feed, the offset store and every sink (and dead-letter target)."""
    probes = [await _probe_feed(config)]
    store = open_store(config.offsets)
    try:
        await asyncio.wait_for(store.check(), CHECK_TIMEOUT)
        probes.append(Probe(True, "offsets", f"{config.offsets.type} store writable"))
    except Exception as exc:
        probes.append(Probe(False, "offsets", _one_line(exc)))
    finally:
        await store.close()
    for sink_config in config.sinks:
        probes.append(await _probe_sink(sink_config, f"sink {sink_config.name}"))
        if sink_config.dead_letter is not None:
            probes.append(
                await _probe_sink(
                    sink_config.dead_letter,
                    f"sink {sink_config.name} dead_letter",
                    name=f"{sink_config.name}.dead_letter",
                )
            )
    return probes


async def _probe_feed(config: BridgeConfig) -> Probe:
    client = feed_client(config.feed)
    try:
        latest = await asyncio.wait_for(client.probe(), CHECK_TIMEOUT)
    except TimeoutError:
        return Probe(False, "feed", f"{config.feed.url}: no answer within {CHECK_TIMEOUT:.0f}s")
    except FeedError as exc:
        return Probe(False, "feed", str(exc))
    finally:
        await client.close()
    where = f"{config.feed.url} ({config.feed.api_version})"
    if latest is None:
        return Probe(True, "feed", f"{where}: reachable, the feed is empty")
    return Probe(True, "feed", f"{where}: reachable, latest sequence {latest.sequence}")


async def _probe_sink(sink_config, component: str, name: str | None = None) -> Probe:
    try:
        sink = create_sink(sink_config, name=name)
        detail = await asyncio.wait_for(sink.check(), CHECK_TIMEOUT)
        return Probe(True, component, detail)
    except TimeoutError:
        return Probe(False, component, f"no answer within {CHECK_TIMEOUT:.0f}s")
    except Exception as exc:
        return Probe(False, component, _one_line(exc))


@dataclass
class CursorRow:
    sink: str
    sequence: int | None
    position: str | None
    latest: int | None
    lag: int | None
    updated_at: str | None


async def offsets_show(config: BridgeConfig) -> tuple[list[CursorRow], str | None]:
    """Each configured route's cursor, the feed's latest sequence and the lag; the second
    value explains why `latest` is unknown, if it is."""
    latest, problem = None, None
    client = feed_client(config.feed)
    try:
        entry = await asyncio.wait_for(client.probe(), CHECK_TIMEOUT)
        latest = entry.sequence if entry is not None else 0
    except (FeedError, TimeoutError) as exc:
        problem = _one_line(exc) or "no answer"
    finally:
        await client.close()
    store = open_store(config.offsets)
    try:
        stored = {row.sink: row for row in await store.list(feed_key(config.feed.url))}
    finally:
        await store.close()
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
            )
        )
    return rows, problem


def as_dicts(rows: list[CursorRow]) -> list[dict]:
    return [asdict(row) for row in rows]


async def offsets_set(config: BridgeConfig, sink: str, sequence: int) -> str:
    """Move a cursor so that the next entry delivered is the first after `sequence`."""
    _require_sink(config, sink)
    if sequence < 0:
        raise ValueError("--sequence must be >= 0")
    if config.feed.api_version == "v2" and sequence > 0:
        entry = await _entry_at(config, sequence)
        position = TimePosition(to_ticks(entry.timestamp), sequence, entry.timestamp)
        text, _ = TimeWindowReader.encode(position)
    else:
        text, _ = SequenceReader.encode(sequence)
    store = open_store(config.offsets)
    try:
        if config.feed.api_version == "v2" and sequence == 0:
            await store.delete(feed_key(config.feed.url), sink)
        else:
            await store.commit(feed_key(config.feed.url), sink, text, sequence)
    finally:
        await store.close()
    return f"sink {sink}: cursor set to sequence {sequence}"


async def offsets_reset(config: BridgeConfig, sink: str, *, to_latest: bool) -> str:
    """Back to the feed's beginning (the stored cursor is deleted), or to its latest entry."""
    _require_sink(config, sink)
    if to_latest:
        client = feed_client(config.feed)
        try:
            latest = await asyncio.wait_for(client.probe(), CHECK_TIMEOUT)
        finally:
            await client.close()
        return await offsets_set(config, sink, latest.sequence if latest else 0)
    store = open_store(config.offsets)
    try:
        await store.delete(feed_key(config.feed.url), sink)
    finally:
        await store.close()
    return f"sink {sink}: cursor reset to the beginning of the feed"


async def _entry_at(config: BridgeConfig, sequence: int) -> Entry:
    """A v2 cursor needs the entry's timestamp: read it through the v1 API of the service."""
    client = FeedClient(config.feed.url, "v1", auth=auth_provider(config.feed))
    try:
        entries = await asyncio.wait_for(
            client.sequence_window(sequence - 1, 1, False), CHECK_TIMEOUT
        )
    finally:
        await client.close()
    if not entries or entries[0].poison:
        raise ValueError(f"the feed has no entry with sequence {sequence} to position on")
    return entries[0]


def _require_sink(config: BridgeConfig, sink: str) -> None:
    names = [s.name for s in config.sinks]
    if sink not in names:
        raise ValueError(f"no sink named {sink!r} in the config (sinks: {', '.join(names)})")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
