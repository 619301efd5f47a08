"""Runs shared by the broker integration tests (Redis, NATS JetStream, RabbitMQ):
simulator → bridge (the real CLI, a subprocess) → the machine's server, through a TCP proxy
of the tests' own, read back with the server's own client.

- `outage_run`: the server cut off for 10 s mid-run while changes keep coming; every
  sequence arrives at least once, each study's last copies in feed order per channel
  (stream, subject, routing key), the transport's id is the event id, and the cursor,
  sampled all along, is never ahead of what the server holds.
- `kill_run`: the bridge SIGKILLed three times at moments of the run; what the server holds
  then is returned for the test to judge (JetStream: exactly once).
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.e2e.helpers import bridge_command, start_bridge, stop, wait_for, write_config
from tests.peers.tcp_proxy import TcpProxy

OUTAGE = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    """One message as the server holds it."""

    channel: str  # the stream, subject or routing key
    body: bytes
    id: str | None  # the event id as the transport carries it

    @property
    def event(self) -> dict[str, Any]:
        return orjson.loads(self.body)

    @property
    def sequence(self) -> int:
        return int(self.event["data"]["sequence"])

    @property
    def study(self) -> str:
        return str(self.event["data"]["studyInstanceUid"])


Reader = Callable[[], list[Message]]


def cursor(tmp_path: Path) -> int:
    """The route's committed cursor (0 before the first commit), read only."""
    path = tmp_path / "offsets.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("select sequence from offsets").fetchall()
    except sqlite3.OperationalError:  # created, its table not yet
        return 0
    return int(rows[0][0]) if rows else 0


class Watch:
    """Reads the server and the cursor together: the cursor first, then the server, so
    that whatever the cursor covered when read must be held by the time it is read."""

    def __init__(self, tmp_path: Path, read: Reader, truth: Callable[[], list[int]]) -> None:
        self.tmp_path = tmp_path
        self.read = read
        self.truth = truth
        self.samples = 0
        self.highest = 0

    def held(self) -> set[int]:
        committed = cursor(self.tmp_path)
        held = {message.sequence for message in self.read()}
        covered = {sequence for sequence in self.truth() if sequence <= committed}
        missing = sorted(covered - held)
        assert missing == [], f"cursor {committed} ahead of the server, missing {missing[:10]}"
        self.samples += 1
        self.highest = max(self.highest, committed)
        return held


def assert_delivered(messages: list[Message], expected: set[int]) -> Counter[int]:
    """Every sequence at least once, the transport id the event id, and per channel and
    study the last copies in feed order; returns the copies per sequence."""
    counts = Counter(message.sequence for message in messages)
    assert set(counts) == expected
    last: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for position, message in enumerate(messages):
        event = message.event
        assert message.id == event["id"], f"sequence {message.sequence}: transport id"
        last[(message.channel, message.study)][message.sequence] = position
    for (channel, study), positions in last.items():
        order = [sequence for sequence, _ in sorted(positions.items(), key=lambda kv: kv[1])]
        assert order == sorted(order), f"{channel} study {study}: out of order"
    return counts


def outage_run(
    simulator: Callable[..., Any],
    tmp_path: Path,
    proxy: TcpProxy,
    sink: dict[str, Any],
    read: Reader,
    *,
    entries: int = 2000,
    seed: int = 71,
) -> str:
    """The 10 s cut mid-run (see the module's docstring); returns a line of figures."""
    sim = simulator(entries=entries, seed=seed)
    config = write_config(
        tmp_path / "bridge.yaml", sim.url, [sink], offsets={"commit_interval": "100ms"}
    )
    watch = Watch(tmp_path, read, lambda: [entry["sequence"] for entry in sim.entries()])
    log = (tmp_path / "bridge.log").open("w")
    bridge = subprocess.Popen(
        bridge_command("run", "-c", str(config)), stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        first = {entry["sequence"] for entry in sim.entries()}
        wait_for(lambda: watch.held() >= first, 90, interval=0.1, message="the first entries")

        proxy.cut()
        down_at = time.monotonic()
        sim.store(generate={"studies": 30, "series": 1, "instances": 8})
        for study in {entry["studyInstanceUid"] for entry in sim.entries()[-240:]}:
            sim.update(study)
        expected = {entry["sequence"] for entry in sim.entries()}
        new = expected - first
        cursor_at_cut = cursor(tmp_path)
        while time.monotonic() < down_at + OUTAGE:  # the outage: the cursor must wait
            held = watch.held()
            time.sleep(0.2)
        held_back = new - held
        cursor_during = cursor(tmp_path)
        proxy.restore()

        wait_for(lambda: watch.held() >= expected, 90, interval=0.1, message="every entry")
        wait_for(lambda: cursor(tmp_path) == max(expected), 30, message="the last commit")
        assert stop(bridge, signal.SIGTERM) < 30
        assert bridge.returncode == 0, (tmp_path / "bridge.log").read_text()[-2000:]
    except AssertionError as failure:
        tail = (tmp_path / "bridge.log").read_text()[-3000:]
        raise AssertionError(f"{failure}\n--- the bridge's log, its end:\n{tail}") from None
    finally:
        if bridge.poll() is None:
            bridge.kill()
        log.close()
        proxy.restore()

    assert held_back, "the outage held nothing back"
    assert cursor_during < max(expected)
    counts = assert_delivered(read(), expected)
    duplicates = sum(counts.values()) - len(counts)
    return (
        f"{len(first)} entries before the cut, {len(new)} during it, {len(held_back)} held "
        f"back {OUTAGE:.0f} s (cursor {cursor_at_cut} -> {cursor_during} while cut), "
        f"{sum(counts.values())} messages read, {duplicates} duplicates, "
        f"cursor sampled {watch.samples} times, never ahead"
    )


def kill_run(
    simulator: Callable[..., Any],
    tmp_path: Path,
    sink: dict[str, Any],
    read: Reader,
    *,
    kills: int = 3,
    entries: int = 20_000,
    seed: int = 72,
) -> tuple[list[Message], set[int]]:
    """The bridge SIGKILLed `kills` times while it delivers, then run to the end; returns
    what the server holds and the sequences expected."""
    sim = simulator(entries=entries, seed=seed, latency_ms=5)
    expected = {entry["sequence"] for entry in sim.entries()}
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        [{"batch_size": 50, **sink}],
        offsets={"commit_interval": "500ms"},
    )
    rng = random.Random(seed)
    for _ in range(kills):
        before = len(read())
        process = start_bridge("run", "-c", str(config))
        wait_for(
            lambda before=before: len(read()) > before + 200, 90, interval=0.2, message="deliveries"
        )
        time.sleep(rng.uniform(0.0, 0.5))  # the crash moment itself is what is random
        stop(process, signal.SIGKILL)
    process = start_bridge("run", "-c", str(config))
    try:
        wait_for(lambda: {m.sequence for m in read()} >= expected, 120, interval=0.2, message="all")
        wait_for(lambda: cursor(tmp_path) == max(expected), 30, message="the last commit")
        assert stop(process, signal.SIGTERM) < 30
    finally:
        if process.poll() is None:
            process.kill()
    return read(), expected
