"""One failing sink never holds back another, and never loses its own entries."""

from __future__ import annotations

import asyncio

from bridge.config import parse_config
from bridge.runtime.pipeline import Pipeline
from tests.e2e.helpers import read_events, sequences


def config_for(url, tmp_path, blocked_path):
    return parse_config(f"""
feed: {{url: "{url}", poll_interval: 50ms}}
offsets: {{path: "{tmp_path / "offsets.db"}", commit_interval: 100ms}}
drain_timeout: 1s
sinks:
  - {{name: healthy, type: file, path: "{tmp_path / "healthy.jsonl"}"}}
  - name: blocked
    type: file
    path: "{blocked_path}"
    retry: {{initial: 20ms, max: 100ms}}
""")


async def until(condition, timeout=30.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def test_a_failing_sink_does_not_stop_the_other_and_catches_up_later(simulator, tmp_path):
    sim = simulator(entries=5_000, seed=31)
    last = sim.entries()[-1]["sequence"]
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the sink needs a directory")
    pipeline = Pipeline(config_for(sim.url, tmp_path, blocker / "events.jsonl"))
    healthy, blocked = pipeline.routes
    running = asyncio.create_task(pipeline.run())
    try:
        await until(lambda: healthy.caught_up)
        assert healthy.committed == last
        assert blocked.committed == 0 and blocked.position == 0  # nothing delivered, no move
        assert blocked.running and blocked.stats.retries > 0

        blocker.unlink()  # the operator fixes the path
        await until(lambda: blocked.caught_up)
        assert blocked.committed == last
    finally:
        pipeline.request_stop()
        assert await running == 0
    events, _ = read_events(blocker / "events.jsonl")
    assert sorted(sequences(events)) == [e["sequence"] for e in sim.entries()]


async def test_a_sink_that_never_recovers_keeps_its_cursor(simulator, tmp_path):
    sim = simulator(entries=2_000, seed=32)
    pipeline = Pipeline(config_for(sim.url, tmp_path, "/dev/full"))
    healthy, blocked = pipeline.routes
    running = asyncio.create_task(pipeline.run())
    try:
        await until(lambda: healthy.caught_up)
        await until(lambda: blocked.stats.retries >= 3)
    finally:
        pipeline.request_stop()
        assert await running == 0
    assert healthy.committed == sim.entries()[-1]["sequence"]
    assert blocked.committed == 0
