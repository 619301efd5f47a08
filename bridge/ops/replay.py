"""`dicom-bridge replay`: deliver a sequence range to one sink again, live cursor untouched.

The replay runs the sink's own route (same sink config, filter, format and dead-letter
target) over the range `[first, last]`, with a cursor kept in memory only, so the bridge
may keep running meanwhile. It reads through the v1 API, whose windows are sequence ranges,
whatever `feed.api_version` the bridge uses (every service serves v1).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bridge.config import BridgeConfig
from bridge.delivery.route import Route
from bridge.feed import FeedSource, Page, SequenceReader
from bridge.offsets.memory import MemoryOffsetStore
from bridge.ops._probe import OutOfRange
from bridge.runtime.progress import Progress
from bridge.runtime.wiring import build_route, feed_client


class RangeReader:
    """A v1 reader that ends its stream at `last`: the page reaching it is the last one and
    reports the route caught up there."""

    def __init__(self, reader: SequenceReader, last: int) -> None:
        self.reader = reader
        self.last = last
        self.initial = reader.initial
        self.encode, self.decode = reader.encode, reader.decode

    async def pages(self, position: int) -> AsyncIterator[Page]:
        async for page in self.reader.pages(position):
            if page.position < self.last and not page.caught_up:
                yield page
                continue
            entries = [e for e in page.entries if e.position <= self.last]
            yield Page(entries, min(page.position, self.last), True, page.latest)
            await asyncio.Event().wait()  # the end: the caller stops the route


@dataclass
class ReplayResult:
    first: int
    last: int
    delivered: int
    filtered: int
    dead_lettered: int
    failure: str | None


async def replay(
    config: BridgeConfig, sink: str, first: int, last: int | None = None
) -> ReplayResult:
    sink_config = config.route(sink)
    if first < 1 or (last is not None and last < first):
        raise ValueError("--from must be >= 1 and --to >= --from")
    v1 = config.feed.model_copy(update={"api_version": "v1", "page_size": 100})
    source = FeedSource(
        feed_client(v1, helper=True), page_size=100, include_metadata=config.feed.include_metadata
    )
    try:
        newest = await source.client.probe()
    except BaseException:
        await source.close()
        raise
    latest = newest.sequence or 0 if newest is not None else 0
    if first > latest:
        await source.close()
        raise OutOfRange(
            f"--from {first} is past the feed's latest sequence {latest}: nothing to replay. "
            "replay re-delivers entries the feed already holds; entries written later reach "
            f"the sink through `run` (to re-deliver the newest, use --from <= {latest})"
        )
    last = latest if last is None else min(last, latest)
    changed = asyncio.Event()
    reader = SequenceReader(source, prefetch=v1.prefetch, poll_interval=v1.poll_interval)
    route = build_route(
        config,
        sink_config,
        reader=RangeReader(reader, last),
        store=MemoryOffsetStore(),
        on_change=changed.set,
    )
    try:
        await _run_to_end(route, first - 1, changed)
    finally:
        await source.close()
    stats = route.stats
    return ReplayResult(
        first, last, stats.forwarded, stats.filtered, stats.dead_lettered, route.failure
    )


async def _run_to_end(route: Route, start: int, changed: asyncio.Event) -> None:
    await route.store.commit(route.feed_key, route.name, str(start), start)
    display = asyncio.create_task(Progress([route]).run()) if Progress.wanted() else None
    await route.start()
    try:
        while not (route.caught_up or route.failure):
            changed.clear()
            await changed.wait()
    finally:
        route.stop_intake()
        await route.close()
        if display is not None:
            display.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await display
