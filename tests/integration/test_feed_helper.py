"""The feed's HTTP helper process: same answers, same errors, survives its own death."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from bridge.feed import FeedClient
from bridge.feed._http import HelperFetcher
from bridge.helper import TooLarge

MAX_BYTES = 4_000_000


async def test_answers_come_through_the_helper_unchanged(simulator):
    sim = simulator(entries=300, seed=61)
    fetcher = HelperFetcher(max_connections=4, timeout=10, max_bytes=MAX_BYTES)
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
    fetcher = HelperFetcher(max_connections=2, timeout=10, max_bytes=MAX_BYTES)
    try:
        url = f"{sim.url}/v1/changefeed"
        assert (await fetcher.get(url, {})).status == 401
        assert (await fetcher.get(url, {"Authorization": "Bearer let-me-in"})).status == 200
    finally:
        await fetcher.close()


async def test_transport_errors_keep_their_httpx_class():
    fetcher = HelperFetcher(max_connections=2, timeout=5, max_bytes=MAX_BYTES)
    try:
        with pytest.raises(httpx.ConnectError):
            await fetcher.get("http://127.0.0.1:9/v1/changefeed/latest", {})
    finally:
        await fetcher.close()


async def test_a_dead_helper_fails_pending_requests_and_is_restarted(simulator):
    sim = simulator(entries=10, seed=62, latency_ms=2000)
    fetcher = HelperFetcher(max_connections=2, timeout=5, max_bytes=MAX_BYTES)
    try:
        pending = asyncio.create_task(fetcher.get(f"{sim.url}/v1/changefeed", {}))
        while not fetcher._helper or not fetcher._helper.pending:  # the request reached it
            await asyncio.sleep(0.01)
        fetcher._helper.process.kill()
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


async def test_answers_the_bridge_has_read_are_not_kept_by_the_helper(simulator):
    """A bridge reading its answers a little late keeps the helper's pipe backed up. Each
    answer used to wait for that shared buffer to drain, keeping its body alive, so the
    helper held every page of a catch-up (hundreds of MB with metadata)."""
    sim = simulator(entries=16_000, seed=65, metadata_size=8192)
    fetcher = HelperFetcher(max_connections=8, timeout=30, max_bytes=MAX_BYTES)
    windows = [f"{sim.url}/v1/changefeed?offset={o}&limit=100&includeMetadata=true" for o in
               range(0, 16_000, 100)]  # fmt: skip
    peak = first = total = 0
    in_flight: list[asyncio.Future] = []
    try:
        in_flight += [asyncio.ensure_future(fetcher.get(url, {})) for url in windows[:8]]
        for url in [*windows[8:], *[None] * 8]:
            answer = await in_flight.pop(0)
            assert answer.status == 200
            total += len(answer.content)
            time.sleep(0.005)  # a busy event loop: the helper's answers queue up meanwhile
            rss = _rss_kib(fetcher._helper.process.pid)
            first, peak = first or rss, max(peak, rss)
            if url is not None:
                in_flight.append(asyncio.ensure_future(fetcher.get(url, {})))
    finally:
        for waiting in in_flight:
            waiting.cancel()
        await fetcher.close()
    assert total > 50_000_000  # what a helper keeping every answer would hold
    assert (peak - first) / 1024 < 40, f"the helper grew from {first} KiB to {peak} KiB"


async def test_an_answer_over_the_cap_is_refused_by_the_helper(simulator):
    sim = simulator(entries=300, seed=66)
    fetcher = HelperFetcher(max_connections=2, timeout=10, max_bytes=2000)
    url = f"{sim.url}/v1/changefeed?includeMetadata=false&limit="
    try:
        with pytest.raises(TooLarge, match="over 2000 bytes"):
            await fetcher.get(f"{url}100", {})
        assert (await fetcher.get(f"{url}1", {})).status == 200
    finally:
        await fetcher.close()


async def test_a_helper_whose_answer_is_refused_is_killed_and_reaped(simulator):
    """Regression: a helper whose answer frame the bridge refused was abandoned but kept
    running (7 of them alive after 22 s)."""
    sim = simulator(entries=300, seed=67)
    fetcher = HelperFetcher(max_connections=2, timeout=10, max_bytes=MAX_BYTES)
    url = f"{sim.url}/v1/changefeed?limit=100"
    try:
        assert (await fetcher.get(url, {})).status == 200
        first = fetcher._helper.process
        fetcher._helper.body_limit = 1000  # as if the helper answered beyond its cap
        with pytest.raises(httpx.ReadError):
            await fetcher.get(url, {})
        assert first.returncode is not None and not _alive(first.pid)
        assert (await fetcher.get(url, {})).status == 200  # from a new helper
    finally:
        await fetcher.close()


async def test_a_helper_that_stops_answering_is_killed_reaped_and_replaced(simulator):
    sim = simulator(entries=10, seed=68)
    # A deadline a loaded machine meets with a helper still starting (Python, httpx).
    fetcher = HelperFetcher(max_connections=2, timeout=3, max_bytes=MAX_BYTES)
    fetcher.grace = 0.5
    url = f"{sim.url}/v1/changefeed"
    try:
        assert (await fetcher.get(url, {})).status == 200
        wedged = fetcher._helper.process
        os.kill(wedged.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await fetcher.get(url, {})
        assert time.monotonic() - started < 10
        assert wedged.returncode is not None and not _alive(wedged.pid)
        assert (await fetcher.get(url, {})).status == 200
    finally:
        await fetcher.close()


async def test_closing_reaps_the_helper(simulator):
    sim = simulator(entries=10, seed=69)
    fetcher = HelperFetcher(max_connections=2, timeout=5, max_bytes=MAX_BYTES)
    assert (await fetcher.get(f"{sim.url}/v1/changefeed", {})).status == 200
    process = fetcher._helper.process
    await fetcher.close()
    assert process.returncode is not None and not _alive(process.pid)


def _alive(pid: int) -> bool:
    """Running, or exited but not reaped (a zombie counts as leaked too)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.startswith("State:") for line in status)
    except FileNotFoundError:
        return False


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
