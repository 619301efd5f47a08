"""The feed client and v1 reader against a hostile feed on loopback (a broken proxy, a
maintenance page, a slow-loris answer, a gzip bomb, a huge junk body), through both fetchers:
the helper process and in-process. Nothing is lost, nothing hangs, nothing is poison."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from bridge.core.backoff import Backoff
from bridge.core.entry import Entry
from bridge.feed import FeedClient, FeedSource, SequenceReader
from tests.e2e.helpers import read_events, run_bridge, sequences, write_config
from tests.peers.hostile_feed import HostileFeed

FAST = Backoff(initial=0.01, maximum=0.1)
FETCHERS = pytest.mark.parametrize("helper", [True, False], ids=["helper", "in-process"])


async def read_all(
    url: str, *, helper: bool, deadline: float = 30.0, include_metadata: bool = False, **options
) -> tuple[list[Entry], FeedClient]:
    """Every entry until the reader is caught up, within `deadline` seconds."""
    options.setdefault("backoff", FAST)
    client = FeedClient(url, helper=helper, **options)
    source = FeedSource(client, page_size=100, include_metadata=include_metadata)
    reader = SequenceReader(source, prefetch=4, poll_interval=0.01)
    entries: list[Entry] = []
    try:
        async with asyncio.timeout(deadline), contextlib.aclosing(reader.pages(0)) as pages:
            async for page in pages:
                entries += page.entries
                if page.caught_up:
                    break
    finally:
        await source.close()
    return entries, client


def assert_complete(entries: list[Entry], count: int) -> None:
    assert [e.sequence for e in entries] == list(range(1, count + 1))
    assert not [e for e in entries if e.poison or e.flags]


@FETCHERS
@pytest.mark.parametrize(
    "fault", ["html", "json-html", "object", "truncate", "outside", "dup", "500"]
)
async def test_page_faults_are_retried_until_the_page_is_read(helper, fault):
    with HostileFeed(entries=1000) as feed:
        feed.script(*[fault] * 5)
        entries, client = await read_all(feed.url, helper=helper, fallback_after=2)
        assert feed.pending_faults() == 0
    assert_complete(entries, 1000)
    assert client.responses.get("500" if fault == "500" else "invalid") == 5


@FETCHERS
async def test_an_entry_corrupted_in_one_read_is_read_again_not_dead_lettered(helper):
    with HostileFeed(entries=250) as feed:
        feed.script("corrupt")
        entries, _ = await read_all(feed.url, helper=helper)
    assert_complete(entries, 250)


async def test_a_maintenance_window_loses_nothing():
    """Regression: a 30 s maintenance page lost 166 entries."""
    with HostileFeed(entries=300) as feed:
        feed.maintenance(1.0)
        entries, client = await read_all(feed.url, helper=True)
    assert_complete(entries, 300)
    assert client.responses["invalid"] >= 1


@FETCHERS
@pytest.mark.parametrize("path", ["page", "latest"])
async def test_a_slow_loris_answer_is_cut_at_the_deadline_and_retried(helper, path):
    """Regression: one byte a second kept a request (and the bridge) waiting forever:
    httpx's timeout bounds the gap between reads, not the request."""
    with HostileFeed(entries=120) as feed:
        feed.script("slowloris", path=path)
        started = time.monotonic()
        entries, client = await read_all(feed.url, helper=helper, timeout=1.5, deadline=20)
    assert_complete(entries, 120)
    assert client.responses["timeout"] == 1
    assert time.monotonic() - started < 15


@FETCHERS
@pytest.mark.parametrize("fault", ["gzipbomb", "junk"])
async def test_an_answer_over_the_cap_is_cut_and_the_window_read_in_smaller_ones(helper, fault):
    with HostileFeed(entries=250, bomb_bytes=256 << 20, junk_bytes=64 << 20) as feed:
        feed.script(fault)
        entries, client = await read_all(feed.url, helper=helper, max_page_bytes=1 << 20)
        limits = [int(query["limit"]) for query in feed.page_requests()]
    assert_complete(entries, 250)
    assert client.responses["oversize"] == 1
    assert min(limits) < 100  # the refused window was read again in halves


@FETCHERS
async def test_an_entry_over_the_cap_comes_without_metadata_flagged(helper):
    with HostileFeed(entries=150, metadata_bytes=200) as feed:
        feed.metadata_sizes[42] = 2 << 20
        entries, _ = await read_all(
            feed.url, helper=helper, include_metadata=True, max_page_bytes=1 << 20
        )
    assert [e.sequence for e in entries] == list(range(1, 151))
    assert [e.sequence for e in entries if e.flags] == [42]
    assert "metadata" not in entries[41].raw and "metadata" in entries[40].raw


async def test_max_requests_per_second_holds_against_an_absurd_latest():
    """Regression: a latest of 2^63-1 made the reader walk empty windows at ~1,800
    requests per second against the clinical service."""
    with HostileFeed(entries=10) as feed:
        feed.latest_sequence = 2**63 - 1
        client = FeedClient(feed.url, helper=True, max_requests_per_second=25)
        source = FeedSource(client, page_size=100, include_metadata=False)
        reader = SequenceReader(source, prefetch=8, poll_interval=0.01)

        async def walk() -> None:
            async with contextlib.aclosing(reader.pages(0)) as pages:
                async for _ in pages:
                    pass

        walking = asyncio.create_task(walk())
        try:  # 40 requests, however long the helper process takes to start on this machine
            async with asyncio.timeout(60):
                while len(feed.requests) < 40 and not walking.done():
                    await asyncio.sleep(0.05)
        finally:
            walking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await walking
            await source.close()
        times = [moment for moment, _, _ in feed.requests]
    span = times[-1] - times[0]
    assert len(times) >= 40
    assert (len(times) - 1) / span <= 25 * 1.02, f"{len(times)} requests in {span:.3f}s"


async def test_half_the_answers_cut_short_by_the_simulator_lose_nothing(simulator):
    """Regression: with the simulator's --truncate-rate 0.5, 99 of 5,000 entries became
    poison dead letters and never reached the sink."""
    sim = simulator(entries=5_000, seed=21, truncate_rate=0.5, disconnect_rate=0.1)
    truth = [entry["sequence"] for entry in sim.entries()]
    entries, client = await read_all(sim.url, helper=True, fallback_after=3)
    assert [e.sequence for e in entries] == truth
    assert not [e for e in entries if e.poison]
    assert client.responses["invalid"] > 10


def test_exit_when_caught_up_exits_despite_a_slow_loris_answer(tmp_path):
    """Regression: one byte a second kept `run --exit-when-caught-up` waiting forever."""
    with HostileFeed(entries=300) as feed:
        feed.script("slowloris")
        sink = {"name": "archive", "type": "file", "path": str(tmp_path / "events.jsonl")}
        options = {"timeout": "2s", "retry": {"initial": "10ms", "max": "100ms"}}
        config = write_config(tmp_path / "bridge.yaml", feed.url, [sink], feed=options)
        started = time.monotonic()
        result = run_bridge("run", "-c", str(config), "--exit-when-caught-up", timeout=60)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    events, _ = read_events(tmp_path / "events.jsonl")
    assert sorted(sequences(events)) == list(range(1, 301))
    assert "no complete answer within 2s" in result.stderr
