"""What the running bridge says at INFO about itself, in text and JSON logs alike: a start
summary, each route's catch-up, progress while behind, route state changes, an exit summary.

Each line names its route (`sink`) and carries its figures as fields (`event`, `position`,
`latest`, ...) for JSON logs. Lines are bounded whatever happens: state changes are logged
once each (retrying; recovered once it stayed so for 5 s; a stopped route logs its own
error), progress once per `logs.progress_interval` (only without a terminal, which shows a
live line instead), and a route caught up again after a progress line said it was behind
is told once more (a route following a live feed, behind for a moment at each new entry,
is not "behind").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from bridge.core.redact import scrub
from bridge.runtime.views import (
    FeedView,
    RouteView,
    committed_sequence,
    handled,
    known_lag,
    known_latest,
    route_state,
)

if TYPE_CHECKING:
    from bridge.config import BridgeConfig
    from bridge.offsets import StoredOffset

log = logging.getLogger("bridge.run")


def log_start(config: BridgeConfig, stored: Mapping[str, StoredOffset | None]) -> None:
    """The start summary: the feed, its API version, the offset store, and each route with
    its sink type and where it starts (`stored`: the cursors as loaded, by route)."""
    log.info(
        "starting: feed %s (api %s), offsets %s, %d route%s",
        scrub(config.feed.url),
        config.feed.api_version,
        config.offsets.where,
        len(config.sinks),
        "" if len(config.sinks) == 1 else "s",
        extra={"event": "start", "api_version": config.feed.api_version},
    )
    for sink in config.sinks:
        cursor = stored.get(sink.name)
        fields: dict[str, object]
        if cursor is not None:
            at = f"sequence {cursor.sequence:,}" if cursor.sequence is not None else "start"
            where = f"resumes from its stored cursor at {at}"
            fields = {"cursor": cursor.sequence, "stored": True}
        else:
            where = f"has no stored cursor: starts at {sink.start}"
            fields = {"cursor": None, "stored": False, "start": sink.start}
        log.info(
            "route %s: %s sink, %s",
            sink.name,
            sink.type,
            where,
            extra={"sink": sink.name, "event": "route", "sink_type": sink.type, **fields},
        )


def log_exit(feed: FeedView, routes: Sequence[RouteView], seconds: float) -> None:
    """The exit summary: per route what it delivered and dead-lettered and its final
    cursor, then the totals."""
    known = known_latest(feed)
    for route in routes:
        stats = route.stats
        position = committed_sequence(route)
        state = route_state(route)
        latest = None if known is None else max(known, route.latest)
        log.info(
            "at exit, %s: %s delivered, %s dead-lettered, %s filtered out; cursor at "
            "sequence %s %s",
            state,
            f"{stats.forwarded:,}",
            f"{stats.dead_lettered:,}",
            f"{stats.filtered:,}",
            f"{position:,}",
            "(the feed's latest not known)" if latest is None else f"of {latest:,}",
            extra={
                "sink": route.name,
                "event": "exit",
                "state": state,
                "delivered": stats.forwarded,
                "dead_lettered": stats.dead_lettered,
                "filtered": stats.filtered,
                "position": position,
                "latest": latest,
            },
        )
    delivered = sum(route.stats.forwarded for route in routes)
    dead = sum(route.stats.dead_lettered for route in routes)
    log.info(
        "exiting after %.1fs: %s events delivered, %s dead-lettered",
        seconds,
        f"{delivered:,}",
        f"{dead:,}",
        extra={"event": "exit", "delivered": delivered, "dead_lettered": dead},
    )


class _Seen:
    """What the reporter last told of a route."""

    def __init__(self, now: float, handled: int) -> None:
        self.state = "starting"
        self.since = now  # of `state`
        self.announced = False  # its catch-up, since it was last said to be behind
        self.behind_since: float | None = None  # not caught up at any look since then
        self.cleared: float | None = None  # not retrying at any look since then
        self.sampled, self.handled = now, handled  # for its rate


class Reporter:
    """Watches the routes once per `tick` seconds and logs what changed; `on_tick` are
    called at each tick too (the log aggregation's flush, readiness's clock)."""

    def __init__(
        self,
        feed: FeedView,
        routes: Sequence[RouteView],
        *,
        progress_interval: float,
        progress_lines: bool = True,
        on_tick: Sequence[Callable[[], object]] = (),
        tick: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feed, self.routes = feed, routes
        self.progress_interval = progress_interval
        self.progress_lines = progress_lines
        self.on_tick = on_tick
        self.tick = min(tick, progress_interval)
        self.settle = min(5.0, progress_interval)
        self._clock = clock
        now = clock()
        self._seen = {route.name: _Seen(now, handled(route)) for route in routes}
        self._progress_at = now + progress_interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.check()

    def check(self) -> None:
        now = self._clock()
        for route in self.routes:  # a replica's routes come with each term as leader
            seen = self._seen.setdefault(route.name, _Seen(now, handled(route)))
            self._changes(route, seen, now)
        if now >= self._progress_at:
            self._progress_at = now + self.progress_interval
            for route in self.routes:
                self._progress(route, self._seen[route.name], now)
        for call in self.on_tick:
            call()

    def _changes(self, route: RouteView, seen: _Seen, now: float) -> None:
        state = route_state(route)
        extra = {"sink": route.name, "event": "state", "state": state}
        if state == "retrying":
            seen.cleared = None
            if seen.state != "retrying":
                reason = route.unreachable or route.last_error or "not connected"
                log.warning("retrying: %s", scrub(reason), extra=extra)
                seen.state, seen.since = state, now
        elif seen.state == "retrying" and state != "failed":
            # Recovered once it stayed so for `settle` seconds: a sink failing one send in
            # five is retrying all along, not recovering every other second.
            if seen.cleared is None:
                seen.cleared = now
            if now - seen.cleared >= self.settle:
                log.info("recovered after %.0fs", seen.cleared - seen.since, extra=extra)
                seen.state, seen.since = state, now
        else:  # a failed route says so itself, once
            seen.state = state
        if route.caught_up:
            seen.behind_since = None
        elif seen.behind_since is None:
            seen.behind_since = now
        if route.running and route.caught_up and not seen.announced:
            seen.announced = True
            position = committed_sequence(route)
            log.info(
                "caught up at sequence %s",
                f"{position:,}",
                extra={"sink": route.name, "event": "caught_up", "position": position},
            )

    def _progress(self, route: RouteView, seen: _Seen, now: float) -> None:
        count = handled(route)
        rate = (count - seen.handled) / (now - seen.sampled) if now > seen.sampled else 0.0
        seen.sampled, seen.handled = now, count
        if not route.running or route.committed_position is None:
            return
        # Behind at every look for half an interval at least: a route following a live
        # feed is behind for a moment at each new entry, which is not news.
        since = seen.behind_since
        if since is None or now - since < self.progress_interval / 2:
            return
        seen.announced = False  # said to be behind: its next catch-up is news
        if not self.progress_lines:
            return
        position = committed_sequence(route)
        latest = known_latest(self.feed)
        lag = known_lag(route, latest)
        text = f"behind: at sequence {position:,}"
        if lag is not None:
            text += f" of {position + lag:,}, {lag:,} entries to go"
        else:
            text += " (the feed's latest not known yet)"
        text += f", {rate:,.0f} entries/s"
        eta = lag / rate if lag and rate > 0 else None
        if eta is not None:
            text += f", ETA {eta:,.0f}s"
        log.info(
            "%s",
            text,
            extra={
                "sink": route.name,
                "event": "progress",
                "position": position,
                "lag_entries": lag,
                "rate": round(rate, 1),
                "eta_seconds": None if eta is None else round(eta),
            },
        )
