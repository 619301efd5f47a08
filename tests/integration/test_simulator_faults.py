"""Injected failures over real HTTP: auth, throttling, 5xx, broken bodies, latency."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from tests.peers.simulator import SimulatorProcess

Start = Callable[..., SimulatorProcess]
PAGE = "/v1/changefeed?limit=100&includeMetadata=false"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(entries=500, seed=3) as process:
        yield process


@pytest.fixture(autouse=True)
def no_faults(sim: SimulatorProcess) -> Iterator[None]:
    yield
    sim.set_faults(
        token=None, forbidden=False, rate_429=0, rate_500=0, rate_503=0, truncate_rate=0,
        disconnect_rate=0, latency_ms=0, latency_jitter_ms=0, script=[],
    )  # fmt: skip


def test_a_token_is_required_once_configured(simulator: Start) -> None:
    sim = simulator(entries=10, token="s3cret")
    missing = sim.feed("/v1/changefeed")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = sim.feed("/v1/changefeed", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert sim.feed("/v1/changefeed", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # Authentication comes before validation; the control API needs no token.
    assert sim.feed("/v1/changefeed", limit=0).status_code == 401
    assert sim.state()["rows"] == 10
    assert sim.faults()["token"] == "********"


def test_forbidden_comes_after_validation(sim: SimulatorProcess) -> None:
    sim.set_faults(forbidden=True)
    response = sim.client.get(PAGE)
    assert (response.status_code, response.text) == (403, "Authorization failed.")
    assert sim.client.get("/v2/changefeed/latest").status_code == 403
    assert sim.client.get("/v1/changefeed?limit=0").status_code == 400


def test_429_carries_retry_after(sim: SimulatorProcess) -> None:
    sim.set_faults(rate_429=1.0, retry_after=7)
    response = sim.client.get(PAGE)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert sim.client.get("/_sim/state").status_code == 200  # control routes never fail


def test_scripted_faults_hit_the_next_requests_in_order(sim: SimulatorProcess) -> None:
    sim.reset_stats()
    sim.set_faults(script=["503", "500", "none", "429"])
    statuses = [sim.client.get(PAGE).status_code for _ in range(5)]
    assert statuses == [503, 500, 200, 429, 200]
    stats = sim.stats()
    assert stats["faults"] == {"429": 1, "500": 1, "503": 1}
    assert stats["requests"]["/v1/changefeed"] == {"200": 2, "429": 1, "500": 1, "503": 1}


def test_random_faults_are_reproducible_from_the_seed(sim: SimulatorProcess) -> None:
    def statuses() -> list[int]:
        sim.set_faults(rate_500=0.3, rate_503=0.2, seed=42)
        return [sim.client.get(PAGE).status_code for _ in range(40)]

    first = statuses()
    assert first == statuses()
    assert {200, 500, 503} == set(first)


def test_a_truncated_body_has_the_length_of_the_cut(sim: SimulatorProcess) -> None:
    full = sim.client.get(PAGE).content
    sim.set_faults(script=["truncate"])
    response = sim.client.get(PAGE)
    assert response.status_code == 200
    assert 0 < len(response.content) < len(full)
    assert full.startswith(response.content)
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


def test_a_disconnect_closes_the_connection_mid_body(sim: SimulatorProcess) -> None:
    sim.set_faults(script=["disconnect"])
    with pytest.raises(httpx.RemoteProtocolError):
        sim.client.get(PAGE)
    assert sim.client.get(PAGE).status_code == 200  # a new connection works


def test_latency_delays_feed_responses_only(sim: SimulatorProcess) -> None:
    sim.set_faults(latency_ms=300)
    started = time.perf_counter()
    assert sim.client.get(PAGE).status_code == 200
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    sim.state()
    assert time.perf_counter() - started < 0.3


def test_fault_settings_are_validated(sim: SimulatorProcess) -> None:
    for bad in ({"rate_429": 2}, {"nonsense": 1}, {"script": ["teapot"]}, {"latency_ms": "x"}):
        response = sim.client.post("/_sim/faults", content=orjson.dumps(bad))
        assert response.status_code == 400, bad
        assert "error" in response.json()


def test_cli_fault_options(simulator: Start) -> None:
    sim = simulator(entries=5, rate_429=1.0, retry_after=3, forbidden=True)
    response = sim.feed("/v2/changefeed")
    assert (response.status_code, response.headers["retry-after"]) == (429, "3")
    sim.set_faults(rate_429=0)
    assert sim.feed("/v2/changefeed").status_code == 403
