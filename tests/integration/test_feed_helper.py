"""The feed's HTTP helper process: same answers, same errors, survives its own death."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bridge.feed import FeedClient
from bridge.feed._http import HelperFetcher


async def test_answers_come_through_the_helper_unchanged(simulator):
    sim = simulator(entries=300, seed=61)
    fetcher = HelperFetcher(max_connections=4, timeout=10)
    try:
        url = f"{sim.url}/v1/changefeed?limit=100"
        answer = await fetcher.get(url, {})
        assert answer.status == 200 and answer.content == httpx.get(url).content
        assert answer.headers["api-supported-versions"] == "1.0-prerelease, 1.0, 2.0"
        refused = await fetcher.get(f"{sim.url}/v1/changefeed?limit=1000", {})
        assert refused.status == 400 and b"is invalid" in refused.content
    finally:
        await fetcher.close()


async def test_request_headers_reach_the_server(simulator):
    sim = simulator(entries=5, seed=64, token="let-me-in")
    fetcher = HelperFetcher(max_connections=2, timeout=10)
    try:
        url = f"{sim.url}/v1/changefeed"
        assert (await fetcher.get(url, {})).status == 401
        assert (await fetcher.get(url, {"Authorization": "Bearer let-me-in"})).status == 200
    finally:
        await fetcher.close()


async def test_transport_errors_keep_their_httpx_class():
    fetcher = HelperFetcher(max_connections=2, timeout=5)
    try:
        with pytest.raises(httpx.ConnectError):
            await fetcher.get("http://127.0.0.1:9/v1/changefeed/latest", {})
    finally:
        await fetcher.close()


async def test_a_dead_helper_fails_pending_requests_and_is_restarted(simulator):
    sim = simulator(entries=10, seed=62, latency_ms=2000)
    fetcher = HelperFetcher(max_connections=2, timeout=5)
    try:
        pending = asyncio.create_task(fetcher.get(f"{sim.url}/v1/changefeed", {}))
        while not fetcher._pending:  # the request reached the helper
            await asyncio.sleep(0.01)
        fetcher._process.kill()
        with pytest.raises(httpx.ReadError):
            await pending
        sim.set_faults(latency_ms=0)
        assert (await fetcher.get(f"{sim.url}/v1/changefeed", {})).status == 200
    finally:
        await fetcher.close()


async def test_the_feed_client_reads_through_the_helper(simulator):
    sim = simulator(entries=250, seed=63)
    async with FeedClient(sim.url, helper=True) as client:
        latest = await client.latest()
        entries = await client.sequence_window(0, 100, include_metadata=False)
    assert latest.sequence == sim.entries()[-1]["sequence"]
    assert [e.raw for e in entries] == [e for e in sim.entries() if e["sequence"] <= 100]
