"""Routing and query validation over real HTTP (docs/changefeed.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.simulator import SimulatorProcess

TEXT = "text/plain; charset=utf-8"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(entries=300, seed=11) as process:
        yield process


# The server's own E2E cases (ChangeFeedTests.cs), all against v2, plus the v1 and latest ones.
BAD_REQUESTS = [
    "/v2/changefeed?limit=-1&offset=0&includeMetadata=true",
    "/v2/changefeed?limit=0&offset=0&includeMetadata=true",
    "/v2/changefeed?limit=blah&offset=0&includeMetadata=true",
    "/v2/changefeed?limit=1&offset=-1&includeMetadata=true",
    "/v2/changefeed?limit=1&offset=92233720368547758070&includeMetadata=true",
    "/v2/changefeed?limit=1&offset=blah&includeMetadata=true",
    "/v2/changefeed?limit=1&offset=0&includeMetadata=0",
    "/v2/changefeed?limit=1&offset=0&includeMetadata=true-ish",
    "/v2/changefeed?limit=1&offset=0&includeMetadata=boolean",
    "/v2/changefeed/latest?includeMetadata=asdf",
    "/v1/changefeed/latest?includeMetadata=asdf",
    "/v1/changefeed?limit=101",
    "/v1/changefeed?limit=0",
    "/v1/changefeed?offset=-1",
    "/v1.0-prerelease/changefeed?includeMetadata=yes",
    "/v2/changefeed?limit=201",
    "/v2/changefeed?startTime=foo&endTime=2023-05-03T10:58:00Z",
    "/v2/changefeed?startTime=2023-05-03T10:58:00Z&endTime=bar",
    "/v2/changefeed?startTime=2023-05-03T10:58:00&endTime=2023-05-03T11:00:00Z",
    "/v2/changefeed?startTime=2023-05-03T10:58:00Z&endTime=2023-05-03T11:00:00",
    "/v2/changefeed?startTime=2023-05-03T10:58:00Z&endTime=2023-05-03T10:58:00Z",
    "/v2/changefeed?startTime=2023-05-03T10:59:00Z&endTime=2023-05-03T10:58:00Z",
    "/v2/changefeed?startTime=2023-05-03T10:58:00+00:00",  # '+' not encoded: a space
    "/v2/changefeed?endTime=2023-05-03T10:58:00.1234567+02:00",
]


@pytest.mark.parametrize("url", BAD_REQUESTS)
def test_invalid_queries_are_plain_text_400s(sim: SimulatorProcess, url: str) -> None:
    response = sim.client.get(url)
    assert response.status_code == 400
    assert response.headers["content-type"] == TEXT
    assert response.text.startswith("The query parameter '")
    assert response.headers["api-supported-versions"] == "1.0-prerelease, 1.0, 2.0"


def test_error_messages_name_the_parameter_and_the_rule(sim: SimulatorProcess) -> None:
    assert sim.client.get("/v1/changefeed?limit=101").text == (
        "The query parameter 'limit' is invalid. The field limit must be between 1 and 100."
    )
    assert sim.client.get("/v2/changefeed?limit=blah").text == (
        "The query parameter 'Limit' is invalid. The value 'blah' is not valid for Limit."
    )
    assert sim.client.get("/v2/changefeed?startTime=2023-05-03T10:58:00").text == (
        "The query parameter 'StartTime' is invalid. Date and time value must specify a time zone."
    )
    assert sim.client.get(
        "/v2/changefeed?startTime=2023-05-03T10:59:00Z&endTime=2023-05-03T10:58:00Z"
    ).text == (
        "The query parameter '' is invalid. The start time '05/03/2023 10:59:00 +00:00' "
        "must occur strictly before the end time '05/03/2023 10:58:00 +00:00'."
    )


@pytest.mark.parametrize(
    "url",
    [
        "/v2/changefeed?startTime=2023-05-03T10:58:00%2B00:00",
        "/v2/changefeed?startTime=2023-05-03T10:58:00Z&endTime=2099-01-01T00:00:00-05:00",
        "/V1/ChangeFeed?OFFSET=0&Limit=5&INCLUDEMETADATA=FALSE&unknown=1",
        "/v1.0/changefeed/",
        "/v2.0/changefeed?limit=200",
        "/v1.0-PRERELEASE/changefeed/latest",
        "/v1/changefeed?offset=9223372036854775807",
    ],
)
def test_valid_variants_are_accepted(sim: SimulatorProcess, url: str) -> None:
    response = sim.client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"


def test_an_unsupported_api_version_is_a_plain_text_400(sim: SimulatorProcess) -> None:
    response = sim.client.get("/v3/changefeed")
    assert response.status_code == 400
    assert response.headers["content-type"] == TEXT
    assert "does not support the API version '3'" in response.text


@pytest.mark.parametrize(
    "path", ["/changefeed", "/vfoo/changefeed", "/v1/changefeeds", "/v1/partitions/x/changefeed"]
)
def test_unknown_paths_are_404(sim: SimulatorProcess, path: str) -> None:
    response = sim.client.get(path)
    assert response.status_code == 404
    assert response.content == b""


def test_only_get_is_allowed(sim: SimulatorProcess) -> None:
    response = sim.client.post("/v1/changefeed")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_stats_count_requests_by_route_and_status(sim: SimulatorProcess) -> None:
    sim.reset_stats()
    page = sim.client.get("/v1/changefeed?limit=5&includeMetadata=false").json()
    sim.client.get("/v1/changefeed?limit=0")
    sim.client.get("/v2/changefeed/latest")
    sim.client.get("/nowhere")
    stats = sim.stats()
    assert stats["requests"] == {
        "/v1/changefeed": {"200": 1, "400": 1},
        "/v2/changefeed/latest": {"200": 1},
        "unmatched": {"404": 1},
    }
    assert stats["total"] == 4
    assert stats["entries_served"] == len(page) + 1
