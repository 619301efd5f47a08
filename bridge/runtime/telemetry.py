"""Prometheus metrics and readiness, read from the feed and the routes.

Counters live as plain integers on the routes and the feed client (no metric objects on the
per-entry path); a custom collector turns them into Prometheus families when `/metrics` is
scraped. Only the two latency histograms are observed as they happen (once per send, once
per feed request). Names follow Prometheus conventions: `dicom_bridge_` prefix, `_total`
counters, base units (seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from bridge import __version__
from bridge.core.redact import scrub
from bridge.feed import now_ticks
from bridge.runtime.views import (
    FeedView,
    RouteView,
    committed_sequence,
    feed_up,
    known_lag,
    known_latest,
    lag_seconds,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.send_seconds = Histogram(
            "dicom_bridge_send_duration_seconds",
            "Time a sink took to answer one send (a batch of events).",
            ["sink"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.feed_seconds = Histogram(
            "dicom_bridge_feed_request_duration_seconds",
            "Time the change feed took to answer one request.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch(self, feed: FeedView, routes: Sequence[RouteView]) -> None:
        """Export the counters and gauges of `feed` and `routes` at every scrape."""
        self.registry.register(_Collector(feed, routes))

    def observe_send(self, sink: str, seconds: float) -> None:
        self.send_seconds.labels(sink).observe(seconds)

    def observe_feed(self, status: str, seconds: float) -> None:
        self.feed_seconds.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def readiness(feed: FeedView, routes: Sequence[RouteView]) -> dict[str, str]:
    """What keeps the bridge from being ready, by component (empty when ready)."""
    return {component: problem for component, (problem, _) in _problems(feed, routes).items()}


def _problems(feed: FeedView, routes: Sequence[RouteView]) -> dict[str, tuple[str, bool]]:
    """Each problem, and whether it is lasting by nature (a stopped route, the store)."""
    problems: dict[str, tuple[str, bool]] = {}
    if feed.client.last_error:
        problems["feed"] = (feed.client.last_error, False)
    for route in routes:
        if route.fatal is not None:
            problems["offsets"] = (str(route.fatal), True)
        if route.failure:
            problems[f"sink {route.name}"] = (f"stopped: {route.failure}", True)
        elif not route.connected or route.unreachable:
            problem = route.unreachable or route.last_error or "not connected yet"
            problems[f"sink {route.name}"] = (problem, False)
    return {component: (scrub(problem), final) for component, (problem, final) in problems.items()}


class Readiness:
    """`/readyz`'s problems: those that lasted `unready_after` seconds (throttling, a
    broker restarting or a sink opening is not an outage), and at once a stopped route or
    a failing offset store. A problem is timed from the first `__call__` (a probe, or the
    reporter's tick) that saw it; it starts over once a call sees it gone."""

    def __init__(
        self,
        feed: FeedView,
        routes: Sequence[RouteView],
        unready_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feed, self.routes = feed, routes
        self.unready_after = unready_after
        self._clock = clock
        self._since: dict[str, float] = {}

    def __call__(self) -> dict[str, str]:
        now = self._clock()
        problems = _problems(self.feed, self.routes)
        self._since = {name: self._since.get(name, now) for name in problems}
        return {
            name: problem
            for name, (problem, final) in problems.items()
            if final or now - self._since[name] >= self.unready_after
        }


class _Collector:
    def __init__(self, feed: FeedView, routes: Sequence[RouteView]) -> None:
        self.feed = feed
        self.routes = routes

    def collect(self) -> Iterator[Metric]:
        client = self.feed.client
        latest = known_latest(self.feed)

        yield _gauge("dicom_bridge_up", "1 while the bridge runs.", value=1)
        info = GaugeMetricFamily(
            "dicom_bridge_build_info", "Build information.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info

        requests = CounterMetricFamily(
            "dicom_bridge_feed_requests",
            "Change-feed requests by outcome: the HTTP status, or error (no answer), timeout, "
            "invalid (not a change-feed answer), oversize (over feed.max_page_bytes).",
            labels=["status"],
        )
        for status, count in sorted(client.responses.items()):
            requests.add_metric([status], count)
        yield requests
        yield CounterMetricFamily(
            "dicom_bridge_feed_pages", "Change-feed pages read.", value=client.pages
        )
        yield _gauge(
            "dicom_bridge_feed_up",
            "1 while the change feed answers (its last request did), 0 before the first "
            "answer and while it fails.",
            value=int(feed_up(self.feed)),
        )
        # Absent rather than a misleading 0 until the feed answered once: an alert on lag
        # must not read "no lag" for a feed never read (`dicom_bridge_feed_up` says why).
        if client.last_success is not None:
            yield _gauge(
                "dicom_bridge_feed_last_success_timestamp_seconds",
                "Unix time of the last change-feed request answered.",
                value=client.last_success,
            )
        if latest is not None:
            yield _gauge(
                "dicom_bridge_feed_latest_sequence",
                "The feed's latest sequence as last seen (absent until the feed answered).",
                value=latest,
            )

        routes = self.routes
        yield from _per_sink(
            routes,
            CounterMetricFamily,
            "dicom_bridge_events_forwarded",
            "Events the sink acknowledged.",
            lambda r: r.stats.forwarded,
        )
        yield from _per_sink(
            routes,
            CounterMetricFamily,
            "dicom_bridge_events_filtered",
            "Entries the route's filter left out.",
            lambda r: r.stats.filtered,
        )
        yield from _per_sink(
            routes,
            CounterMetricFamily,
            "dicom_bridge_events_dead_lettered",
            "Events sent to the dead-letter target.",
            lambda r: r.stats.dead_lettered,
        )
        failed = CounterMetricFamily(
            "dicom_bridge_events_failed",
            "Failed deliveries by kind: transient (retried), permanent (dead-lettered), "
            "poison (unreadable entries, dead-lettered).",
            labels=["sink", "kind"],
        )
        for route in routes:
            for kind, count in route.stats.failed.items():
                failed.add_metric([route.name, kind], count)
        yield failed

        started = [route for route in routes if route.committed_position is not None]
        yield from _per_sink(
            started,
            GaugeMetricFamily,
            "dicom_bridge_committed_sequence",
            "Sequence of the route's committed cursor (from the store at start).",
            committed_sequence,
        )
        lags = {route.name: known_lag(route, latest) for route in started}
        yield from _per_sink(
            [route for route in started if lags[route.name] is not None],
            GaugeMetricFamily,
            "dicom_bridge_lag_entries",
            "Feed latest sequence minus the committed cursor's sequence (absent until both "
            "are known).",
            lambda r: lags[r.name] or 0,
        )
        now = now_ticks()
        yield from _per_sink(
            routes,
            GaugeMetricFamily,
            "dicom_bridge_lag_seconds",
            "Age of the oldest entry admitted but not yet delivered (0 when none).",
            lambda r: lag_seconds(r, now),
        )
        yield from _per_sink(
            routes,
            GaugeMetricFamily,
            "dicom_bridge_in_flight_batches",
            "Sends under way.",
            lambda r: r.in_flight,
        )
        yield from _per_sink(
            routes,
            GaugeMetricFamily,
            "dicom_bridge_pending_events",
            "Entries admitted beyond the cursor (bounded by max_pending).",
            lambda r: r.pending,
        )
        yield from _per_sink(
            routes,
            GaugeMetricFamily,
            "dicom_bridge_sink_connected",
            "1 when the sink's last send reached its peer.",
            lambda r: int(r.connected and not r.unreachable),
        )
        yield from _per_sink(
            routes,
            GaugeMetricFamily,
            "dicom_bridge_route_running",
            "0 once a route stopped on an error.",
            lambda r: int(r.running),
        )


def _per_sink(
    routes: Sequence[RouteView],
    family: type[CounterMetricFamily | GaugeMetricFamily],
    name: str,
    documentation: str,
    value: Callable[[RouteView], float],
) -> Iterator[Metric]:
    metric = family(name, documentation, labels=["sink"])
    for route in routes:
        metric.add_metric([route.name], value(route))
    yield metric


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
