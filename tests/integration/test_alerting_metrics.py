"""Metrics an alert can rely on: lag from the stored cursor and the feed's latest, known
from the start (and absent, not 0, while unknown), the feed's health, the build info under
its documented name; readiness that degrades only once a problem lasted; a scrape that
`promtool check metrics` accepts."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time

import httpx
import pytest

from bridge import __version__
from bridge.config import parse_config
from bridge.runtime.pipeline import Pipeline
from bridge.runtime.telemetry import Readiness
from tests.integration.test_operations import metric, until
from tests.security.scenario import closed_port


def config(url: str, tmp_path, path, unready_after: str = "60s"):
    return parse_config(f"""
feed: {{url: "{url}", poll_interval: 50ms, retry: {{initial: 20ms, max: 100ms}}}}
offsets: {{path: "{tmp_path / "offsets.db"}", commit_interval: 100ms}}
drain_timeout: 1s
http: {{listen: "127.0.0.1:0", unready_after: {unready_after}}}
sinks:
  - name: archive
    type: file
    path: "{path}"
    retry: {{initial: 20ms, max: 100ms}}
""")


async def listening(pipeline: Pipeline) -> str:
    await until(lambda: _now(pipeline.listener is not None and pipeline.listener.started))
    assert pipeline.listener is not None
    return f"http://127.0.0.1:{pipeline.listener.port}"


async def _now(value):
    return value


def has(text: str, name: str) -> bool:
    return re.search(rf"^{re.escape(name)}[{{ ]", text, re.MULTILINE) is not None


async def test_lag_is_known_from_the_start_while_a_sink_is_down(simulator, tmp_path):
    sim = simulator(entries=500, seed=71)
    first = Pipeline(config(sim.url, tmp_path, tmp_path / "out" / "events.jsonl"))
    assert await first.run(exit_when_caught_up=True) == 0  # a stored cursor at the end
    stored = sim.state()["latest_sequence"]
    sim.store(generate={"studies": 2, "series": 1, "instances": 6})  # 12 more
    latest = sim.state()["latest_sequence"]

    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")  # the sink cannot write: nothing is delivered
    pipeline = Pipeline(config(sim.url, tmp_path, blocker / "events.jsonl", "500ms"))
    running = asyncio.create_task(pipeline.run())
    lags: list[float] = []
    try:
        base = await listening(pipeline)
        async with httpx.AsyncClient(base_url=base) as http:

            async def lag_known() -> bool:
                text = (await http.get("/metrics")).text
                if has(text, "dicom_bridge_lag_entries"):
                    lags.append(metric(text, "dicom_bridge_lag_entries", "archive"))
                return bool(lags) and lags[-1] == latest - stored

            await until(lag_known)
            text = (await http.get("/metrics")).text
            assert metric(text, "dicom_bridge_committed_sequence", "archive") == stored
            assert metric(text, "dicom_bridge_feed_latest_sequence") == latest
            assert metric(text, "dicom_bridge_feed_up") == 1
            success = metric(text, "dicom_bridge_feed_last_success_timestamp_seconds")
            assert time.time() - 60 < success <= time.time()
            assert f'dicom_bridge_build_info{{version="{__version__}"}} 1.0' in text
            assert not has(text, "dicom_bridge_build")  # the old name is gone
            assert metric(text, "dicom_bridge_events_forwarded_total", "archive") == 0

            async def unready() -> bool:
                return (await http.get("/readyz")).status_code == 503

            await until(unready)  # once the sink's problem lasted 500 ms
            problems = (await http.get("/readyz")).json()["problems"]
            assert set(problems) == {"sink archive"} and "blocker" in problems["sink archive"]
            check_metrics(text)
    finally:
        pipeline.request_stop()
        await running
    assert lags and all(lag == latest - stored for lag in lags), lags  # never a misleading 0


async def test_an_unreachable_feed_exports_no_lag_and_feed_up_0(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    pipeline = Pipeline(config(url, tmp_path, tmp_path / "events.jsonl"))
    running = asyncio.create_task(pipeline.run())
    try:
        base = await listening(pipeline)
        async with httpx.AsyncClient(base_url=base) as http:

            async def tried_twice() -> bool:
                text = (await http.get("/metrics")).text
                return 'dicom_bridge_feed_requests_total{status="error"} 2.0' in text

            await until(tried_twice)
            text = (await http.get("/metrics")).text
            assert metric(text, "dicom_bridge_feed_up") == 0
            for absent in (
                "dicom_bridge_lag_entries",
                "dicom_bridge_feed_latest_sequence",
                "dicom_bridge_feed_last_success_timestamp_seconds",
            ):
                assert not has(text, absent), f"{absent} exported for a feed never read"
            # A problem younger than http.unready_after (60 s) does not make it unready.
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["problems"] == {}
            check_metrics(text)
    finally:
        pipeline.request_stop()
        await running


async def test_a_feed_gone_after_a_read_keeps_the_last_known_lag(simulator, tmp_path):
    sim = simulator(entries=300, seed=72)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    pipeline = Pipeline(config(sim.url, tmp_path, blocker / "events.jsonl"))
    running = asyncio.create_task(pipeline.run())
    latest = sim.state()["latest_sequence"]
    try:
        base = await listening(pipeline)
        async with httpx.AsyncClient(base_url=base) as http:

            async def scrape() -> str:
                return (await http.get("/metrics")).text

            async def lag_known() -> bool:
                return has(await scrape(), "dicom_bridge_lag_entries")

            await until(lag_known)
            success = metric(await scrape(), "dicom_bridge_feed_last_success_timestamp_seconds")
            sim.stop()

            async def feed_down() -> bool:
                return metric(await scrape(), "dicom_bridge_feed_up") == 0

            await until(feed_down)
            text = await scrape()
            assert metric(text, "dicom_bridge_lag_entries", "archive") == latest
            assert metric(text, "dicom_bridge_feed_latest_sequence") == latest
            last = metric(text, "dicom_bridge_feed_last_success_timestamp_seconds")
            assert success <= last < time.time()
    finally:
        pipeline.request_stop()
        await running


def check_metrics(text: str) -> None:
    """`promtool check metrics` (lint included) on a real scrape."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make tools` installs it (Debian's prometheus)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


class _Client:
    last_error: str | None = None


class _Feed:
    client = _Client()


def test_readiness_degrades_only_once_a_problem_lasted():
    now = [0.0]
    feed = _Feed()
    readiness = Readiness(feed, [], unready_after=60.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert readiness() == {}
    feed.client.last_error = "GET /changefeed: 429 throttled"
    assert readiness() == {}  # seen at 0
    now[0] = 59.0
    assert readiness() == {}
    now[0] = 60.0
    assert readiness() == {"feed": "GET /changefeed: 429 throttled"}
    feed.client.last_error = None
    now[0] = 61.0
    assert readiness() == {}
    feed.client.last_error = "again"  # a new problem: timed from now
    now[0] = 62.0
    assert readiness() == {}
    now[0] = 122.0
    assert readiness() == {"feed": "again"}
