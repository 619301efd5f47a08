"""What the observers of the running bridge (metrics, readiness, the status page, progress
logs) read of the feed and the routes, and the figures they derive from it, computed once
here so that every view tells the same story.

The Protocols are satisfied by `bridge.feed.FeedSource` / `FeedClient` and
`bridge.delivery.Route`; observers depend on these, not on the pipeline.
"""

from __future__ import annotations

from typing import Protocol

from bridge.core.entry import Entry
from bridge.feed import TICKS_PER_SECOND, now_ticks, to_ticks
from bridge.runtime.progress import sequence_of


class FeedClientView(Protocol):
    """What telemetry reads of the feed client (`bridge.feed.FeedClient`)."""

    @property
    def responses(self) -> dict[str, int]: ...
    @property
    def pages(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_success(self) -> float | None: ...


class FeedView(Protocol):
    """What telemetry reads of the shared feed reader (`bridge.feed.FeedSource`)."""

    @property
    def client(self) -> FeedClientView: ...
    @property
    def latest_seen(self) -> Entry | None: ...
    @property
    def latest_known(self) -> bool: ...


class StatsView(Protocol):
    forwarded: int
    filtered: int
    dead_lettered: int
    failed: dict[str, int]


class RouteView(Protocol):
    """What telemetry reads of a route (`bridge.delivery.Route`)."""

    @property
    def name(self) -> str: ...
    @property
    def stats(self) -> StatsView: ...
    @property
    def latest(self) -> int: ...
    @property
    def committed_position(self) -> object: ...
    @property
    def oldest_timestamp(self) -> str | None: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def connected(self) -> bool: ...
    @property
    def unreachable(self) -> str | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def running(self) -> bool: ...
    @property
    def caught_up(self) -> bool: ...
    @property
    def failure(self) -> str | None: ...
    @property
    def fatal(self) -> BaseException | None: ...


def feed_latest(feed: FeedView) -> int:
    """The feed's latest sequence as last seen (0 before the first answer)."""
    entry = feed.latest_seen
    return entry.sequence or 0 if entry is not None else 0


def committed_sequence(route: RouteView) -> int:
    """The sequence of the route's committed cursor."""
    return sequence_of(route.committed_position)


def feed_up(feed: FeedView) -> bool:
    """The feed's last request was answered (and at least one was)."""
    client = feed.client
    return client.last_error is None and any(s in client.responses for s in ("200", "204"))


def handled(route: RouteView) -> int:
    """Entries the route is done with: delivered, filtered out or dead-lettered."""
    stats = route.stats
    return stats.forwarded + stats.filtered + stats.dead_lettered


def route_state(route: RouteView) -> str:
    """One word for what the route is doing: `failed` (stopped on an error), `starting`
    (cursor not loaded yet), `retrying` (its sink's peer refuses or is unreachable),
    `caught up`, or `catching up`."""
    if not route.running:
        return "failed"
    if route.committed_position is None:
        return "starting"
    if route.unreachable or (not route.connected and route.last_error):
        return "retrying"
    return "caught up" if route.caught_up else "catching up"


def lag_entries(route: RouteView, latest: int) -> int:
    """Entries between the route's committed cursor and the feed's latest entry."""
    return max(0, max(latest, route.latest) - committed_sequence(route))


def lag_seconds(route: RouteView, now: int | None = None) -> float:
    """Age of the oldest entry admitted but not yet delivered (0 when none)."""
    timestamp = route.oldest_timestamp
    if not timestamp:
        return 0.0
    try:
        ticks = to_ticks(timestamp)
    except ValueError:
        return 0.0
    return max(0.0, ((now_ticks() if now is None else now) - ticks) / TICKS_PER_SECOND)


def known_latest(feed: FeedView) -> int | None:
    """The feed's latest sequence as last seen; None until the feed told it once (a lag
    computed from an unknown latest would read 0 and hide a backlog)."""
    return feed_latest(feed) if feed.latest_known else None


def known_lag(route: RouteView, latest: int | None) -> int | None:
    """`lag_entries` once both ends are known: the route's stored cursor (loaded at start)
    and the feed's latest (`known_latest`); None before."""
    if latest is None or route.committed_position is None:
        return None
    return lag_entries(route, latest)
