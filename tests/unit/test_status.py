"""`/status.json`: the fields the status page shows, from fakes of the views' Protocols."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson

from bridge.core.redact import register, register_url
from bridge.runtime.status import StatusBoard, page

ROUTE_FIELDS = {
    "name",
    "sink_type",
    "state",
    "cursor",
    "latest",
    "lag_entries",
    "lag_seconds",
    "last_error",
    "dead_lettered",
    "delivered",
    "filtered",
    "pending",
    "in_flight",
    "rate",
    "history",
}


@dataclass
class Stats:
    forwarded: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    failed: dict[str, int] = field(default_factory=dict)


@dataclass
class FakeRoute:
    name: str
    stats: Stats = field(default_factory=Stats)
    latest: int = 0
    committed_position: Any = None
    oldest_timestamp: str | None = None
    in_flight: int = 0
    pending: int = 0
    connected: bool = True
    unreachable: str | None = None
    last_error: str | None = None
    failure: str | None = None
    fatal: BaseException | None = None
    caught_up: bool = False

    @property
    def running(self) -> bool:
        return self.failure is None and self.fatal is None


@dataclass
class FakeClient:
    responses: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    last_error: str | None = None


@dataclass
class FakeFeed:
    client: FakeClient = field(default_factory=FakeClient)
    latest_seen: Any = None

    @property
    def latest_known(self) -> bool:
        return self.latest_seen is not None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def board(feed: FakeFeed, *routes: FakeRoute, clock: Clock | None = None) -> StatusBoard:
    return StatusBoard(
        feed,
        routes,
        url="https://dicom.example/dicomweb",
        api_version="v2",
        sink_types={route.name: "webhook" for route in routes},
        clock=clock or Clock(),
    )


def test_status_json_has_the_feed_and_every_route_with_the_documented_fields():
    feed = FakeFeed(FakeClient({"200": 3}, pages=3), SimpleNamespace(sequence=120))
    old = (datetime.now(UTC) - timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    behind = FakeRoute("hooks", committed_position=100, latest=120, oldest_timestamp=old)
    done = FakeRoute("files", committed_position=120, latest=120, caught_up=True)
    status = orjson.loads(board(feed, behind, done).json())

    assert status["role"] is None
    assert status["feed"] == {
        "url": "https://dicom.example/dicomweb",
        "api_version": "v2",
        "latest": 120,
        "up": True,
        "pages": 3,
        "last_error": None,
    }
    assert [route["name"] for route in status["routes"]] == ["hooks", "files"]
    hooks, files = status["routes"]
    assert set(hooks) == ROUTE_FIELDS
    assert hooks["sink_type"] == "webhook"
    assert (hooks["cursor"], hooks["latest"], hooks["lag_entries"]) == (100, 120, 20)
    assert 89 <= hooks["lag_seconds"] <= 120
    assert hooks["state"] == "catching up"
    assert (files["state"], files["lag_entries"], files["lag_seconds"]) == ("caught up", 0, 0)


def test_route_states():
    feed = FakeFeed()
    routes = [
        FakeRoute("starting"),
        FakeRoute("retrying", committed_position=5, connected=False, last_error="503 busy"),
        FakeRoute("unreachable", committed_position=5, unreachable="all brokers down"),
        FakeRoute("failed", committed_position=5, failure="401 unauthorized"),
    ]
    status = orjson.loads(board(feed, *routes).json())
    assert [(r["name"], r["state"]) for r in status["routes"]] == [
        ("starting", "starting"),
        ("retrying", "retrying"),
        ("unreachable", "retrying"),
        ("failed", "failed"),
    ]
    assert status["routes"][0]["cursor"] is None and status["routes"][0]["lag_entries"] is None
    # The feed never answered: its latest, hence every lag, unknown (null), not 0.
    assert status["feed"]["latest"] is None
    assert [(r["cursor"], r["latest"], r["lag_entries"]) for r in status["routes"][1:]] == [
        (5, None, None)
    ] * 3
    assert [r["last_error"] for r in status["routes"][1:]] == [
        "503 busy",
        "all brokers down",
        "401 unauthorized",
    ]


def test_feed_down_before_any_answer_and_after_an_error():
    assert orjson.loads(board(FakeFeed()).json())["feed"]["up"] is False
    assert orjson.loads(board(FakeFeed()).json())["feed"]["latest"] is None
    failing = FakeFeed(FakeClient({"200": 1, "503": 2}, last_error="GET ...: 503"))
    assert orjson.loads(board(failing).json())["feed"]["up"] is False


def test_rate_and_history_from_samples():
    clock = Clock()
    route = FakeRoute("hooks", committed_position=0)
    status_board = board(FakeFeed(), route, clock=clock)
    status_board.sample()
    for delivered in (100, 300, 300):
        clock.now += 5
        route.stats.forwarded = delivered
        status_board.sample()
    hooks = orjson.loads(status_board.json())["routes"][0]
    assert hooks["history"] == [20.0, 40.0, 0.0]
    assert hooks["rate"] == 0.0
    assert hooks["delivered"] == 300


def test_secrets_never_in_status_json():
    register("s3cr3t-token-value")
    register_url("https://user:hunter2-password@dicom.example/dicomweb?sig=abcdef123456")
    feed = FakeFeed(FakeClient(last_error="GET ...: 401 bad token s3cr3t-token-value"))
    route = FakeRoute(
        "hooks", committed_position=1, connected=False, last_error="echo s3cr3t-token-value"
    )
    status_board = StatusBoard(
        feed,
        [route],
        url="https://user:hunter2-password@dicom.example/dicomweb?sig=abcdef123456",
        api_version="v1",
        sink_types={"hooks": "webhook"},
    )
    text = status_board.json().decode()
    for secret in ("s3cr3t-token-value", "hunter2-password", "abcdef123456"):
        assert secret not in text


def test_the_page_is_self_contained():
    html = page().decode()
    assert "status.json" in html
    # Nothing fetched from elsewhere: no external scripts, styles, fonts or images.
    for reference in ("http://", "https://", "src=", "<link"):
        assert reference not in html.replace('"http://www.w3.org/2000/svg"', "")
    # Text from peers is set with textContent, never parsed as HTML.
    assert "innerHTML" not in html.replace("never innerHTML", "")


async def test_the_listener_serves_the_page_and_status_json_with_a_strict_policy():
    import asyncio

    import httpx

    from bridge.runtime.listener import Listener
    from bridge.runtime.status import JSON_TYPE, PAGE_TYPE

    status_board = board(FakeFeed(), FakeRoute("hooks", committed_position=3))
    listener = Listener(
        lambda: b"",
        dict,
        "127.0.0.1",
        0,
        pages={
            "/": lambda: (page(), PAGE_TYPE),
            "/status.json": lambda: (status_board.json(), JSON_TYPE),
        },
    )
    serving = asyncio.create_task(listener.serve())
    try:
        async with asyncio.timeout(10):
            while not listener.started:
                await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.port}") as client:
            html = await client.get("/")
            assert html.status_code == 200 and html.headers["content-type"] == PAGE_TYPE
            policy = html.headers["content-security-policy"]
            assert "default-src 'none'" in policy and "connect-src 'self'" in policy
            answer = await client.get("/status.json?ignored=1")
            assert answer.json()["routes"][0]["name"] == "hooks"
            assert "content-security-policy" not in answer.headers
    finally:
        listener.stop()
        await asyncio.wait_for(serving, 10)
