"""The status page: `/` of `http.listen` serves one self-contained HTML page (inline CSS
and JavaScript, nothing fetched from elsewhere) that refreshes itself from `/status.json`.

`StatusBoard` reads the feed and the routes through the Protocols of `bridge.runtime.views`
(the same figures as the metrics) and samples each route's handled entries every
`interval` seconds, keeping `HISTORY` rates for the page's sparklines. Every text that may
quote a peer passes through `bridge.core.redact.scrub`; the feed URL is shown without
credentials or query.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import orjson

from bridge import __version__
from bridge.core.redact import scrub
from bridge.feed import now_ticks
from bridge.runtime.views import (
    FeedView,
    RouteView,
    committed_sequence,
    feed_up,
    handled,
    known_lag,
    known_latest,
    lag_seconds,
    route_state,
)

INTERVAL = 5.0  # seconds between samples of the delivery rate
HISTORY = 60  # samples kept: five minutes at the default interval

PAGE_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/json"


@functools.cache
def page() -> bytes:
    """The status page (a package resource, read once)."""
    return files("bridge.runtime").joinpath("status.html").read_bytes()


class StatusBoard:
    """What `/status.json` answers, for one feed and its routes."""

    def __init__(
        self,
        feed: FeedView,
        routes: Sequence[RouteView],
        *,
        url: str,
        api_version: str,
        sink_types: dict[str, str],
        interval: float = INTERVAL,
        history: int = HISTORY,
        clock: Any = time.monotonic,
    ) -> None:
        self.feed = feed
        self.routes = routes
        self.url = url
        self.api_version = api_version
        self.sink_types = sink_types
        self.interval = interval
        self.role: str | None = None  # the replica role, once replicas exist
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}
        self._history = history
        self._rates: dict[str, deque[float]] = {r.name: deque(maxlen=history) for r in routes}

    def sample(self) -> None:
        """Record each route's delivery rate since the previous sample."""
        now = self._clock()
        for route in self.routes:
            count = handled(route)
            previous = self._last.get(route.name)
            self._last[route.name] = (now, count)
            if previous is not None and now > previous[0]:
                rate = (count - previous[1]) / (now - previous[0])
                # (a replica's routes come with each term as leader)
                self._rates.setdefault(route.name, deque(maxlen=self._history))
                self._rates[route.name].append(round(rate, 1))

    async def run(self) -> None:
        """Sample every `interval` seconds until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def snapshot(self) -> dict[str, Any]:
        latest = known_latest(self.feed)  # None until the feed told it: no lag of 0 then
        now = now_ticks()
        client = self.feed.client
        error = client.last_error
        return {
            "version": __version__,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "role": self.role,
            "feed": {
                "url": scrub(self.url),
                "api_version": self.api_version,
                "latest": latest,
                "up": feed_up(self.feed),
                "pages": client.pages,
                "last_error": scrub(error) if error else None,
            },
            "routes": [self._route(route, latest, now) for route in self.routes],
        }

    def _route(self, route: RouteView, latest: int | None, now: int) -> dict[str, Any]:
        stats = route.stats
        error = route.failure or route.unreachable or route.last_error
        rates = self._rates.get(route.name, ())
        started = route.committed_position is not None
        return {
            "name": route.name,
            "sink_type": self.sink_types.get(route.name, "?"),
            "state": route_state(route),
            "cursor": committed_sequence(route) if started else None,
            "latest": None if latest is None else max(latest, route.latest),
            "lag_entries": known_lag(route, latest),
            "lag_seconds": round(lag_seconds(route, now), 1),
            "last_error": scrub(error) if error else None,
            "delivered": stats.forwarded,
            "filtered": stats.filtered,
            "dead_lettered": stats.dead_lettered,
            "pending": route.pending,
            "in_flight": route.in_flight,
            "rate": rates[-1] if rates else 0.0,
            "history": list(rates),
        }

    def json(self) -> bytes:
        return orjson.dumps(self.snapshot())
