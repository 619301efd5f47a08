"""The reporter's lines about routes (`bridge.runtime.reporting.Reporter`), on a fake clock:
state changes once each, a catch-up told once (again only after the route was said to be
behind), progress only for a route behind for a while."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bridge.delivery.sender import RouteStats
from bridge.runtime.reporting import Reporter


@dataclass
class FakeClient:
    responses: dict[str, int] = field(default_factory=lambda: {"200": 1})
    pages: int = 0
    last_error: str | None = None
    last_success: float | None = 1.0


@dataclass
class FakeFeed:
    client: FakeClient = field(default_factory=FakeClient)
    latest_seen: object = None
    latest_known: bool = False


@dataclass
class FakeRoute:
    name: str = "hooks"
    stats: RouteStats = field(default_factory=RouteStats)
    latest: int = 1_000
    committed_position: object = 0
    oldest_timestamp: str | None = None
    in_flight: int = 0
    pending: int = 0
    connected: bool = True
    unreachable: str | None = None
    last_error: str | None = None
    running: bool = True
    caught_up: bool = False
    failure: str | None = None
    fatal: BaseException | None = None


def reporter(route: FakeRoute, now: list[float]) -> Reporter:
    return Reporter(
        FakeFeed(),  # type: ignore[arg-type]
        [route],  # type: ignore[list-item]
        progress_interval=30.0,
        clock=lambda: now[0],
    )


def lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "bridge.run"]


def test_a_flapping_sink_is_retrying_once_then_recovered_once(caplog):
    caplog.set_level(logging.INFO)
    now = [0.0]
    route = FakeRoute(caught_up=True, committed_position=1_000)
    watching = reporter(route, now)
    watching.check()
    for second in range(1, 21):  # one send in two fails, for 20 s
        now[0] = float(second)
        route.connected = second % 2 == 0
        route.last_error = None if route.connected else "503 Service Unavailable"
        watching.check()
    route.connected, route.last_error = True, None
    for second in range(21, 40):
        now[0] = float(second)
        watching.check()
    assert lines(caplog) == [
        "caught up at sequence 1,000",
        "retrying: 503 Service Unavailable",
        "recovered after 19s",  # failing from 1 s to 20 s
    ]


def test_a_failed_route_is_left_to_say_so_itself(caplog):
    caplog.set_level(logging.INFO)
    now = [0.0]
    route = FakeRoute(connected=False, last_error="cannot open sink: refused")
    watching = reporter(route, now)
    watching.check()
    route.running, route.failure = False, "401 Unauthorized"
    now[0] = 10.0
    watching.check()
    assert lines(caplog) == ["retrying: cannot open sink: refused"]


def test_progress_for_a_route_behind_for_a_while_then_its_catch_up(caplog):
    caplog.set_level(logging.INFO)
    now = [0.0]
    route = FakeRoute()
    watching = reporter(route, now)
    for second in range(1, 61):  # behind for a minute, 10 entries/s
        now[0] = float(second)
        route.stats.forwarded += 10
        route.committed_position = route.stats.forwarded
        watching.check()
    route.caught_up, route.committed_position = True, 1_000
    now[0] = 61.0
    watching.check()
    # Then following a live feed: behind for a moment at most looks, never at every one.
    for second in range(62, 200):
        now[0] = float(second)
        route.caught_up = second % 3 != 0
        watching.check()
    assert lines(caplog) == [
        "behind: at sequence 300 (the feed's latest not known yet), 10 entries/s",
        "behind: at sequence 600 (the feed's latest not known yet), 10 entries/s",
        "caught up at sequence 1,000",
    ]
