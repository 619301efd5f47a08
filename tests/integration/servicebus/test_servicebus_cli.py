"""The real `dicom-bridge` CLI forwarding to the AMQP peer: a SIGKILL and restart with
duplicate detection on, and a 10 s outage of the peer mid-run."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

from tests.e2e.helpers import (
    bridge_command,
    run_bridge,
    stop,
    wait_for,
    write_config,
)
from tests.integration.servicebus.conftest import (
    QUEUE,
    receive_all,
    sink_config,
    stored_sequences,
)


def cursor(tmp_path: Path) -> int:
    """The route's committed sequence (0 before the first commit)."""
    path = tmp_path / "offsets.db"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("select sequence from offsets where sink = 'queue'").fetchone()
    return row[0] if row else 0


def start_logged(log: Path, *arguments: str) -> subprocess.Popen:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            bridge_command(*arguments), stdout=subprocess.DEVNULL, stderr=stderr
        )


def depth(peer) -> int:
    return peer.stats()["queues"].get(QUEUE, 0)


async def test_sigkill_and_restart_deliver_each_sequence_exactly_once(
    simulator, peer, tmp_path, record_property
):
    sim = simulator(entries=1500, seed=11)
    truth = [entry["sequence"] for entry in sim.entries()]
    peer.set(duplicate_detection=True)
    # No commit before the kill: the restart sends everything again from the start.
    config = write_config(
        tmp_path / "config.yaml",
        sim.url,
        [sink_config(peer, batch_size=20)],
        offsets={"commit_interval": "60s"},
    )
    bridge = start_logged(
        tmp_path / "bridge.log", "run", "-c", str(config), "--exit-when-caught-up"
    )
    try:
        wait_for(lambda: depth(peer) >= 200, 30, 0.01, "the first messages")
        peer.set(server_busy=True)  # hold the bridge mid-run
        wait_for(lambda: peer.counters()["busy"] >= 1, 30, 0.01, "a throttled send")
        stop(bridge, signal.SIGKILL)
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
    held = depth(peer)
    assert 200 <= held < len(truth)
    assert cursor(tmp_path) == 0

    peer.set(server_busy=False)
    finished = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
    assert finished.returncode == 0, finished.stderr

    counters = peer.counters()
    assert counters["duplicates"] == held  # every re-sent message was recognised
    received = await receive_all(peer, len(truth))
    counts = Counter(message["json"]["data"]["sequence"] for message in received)
    assert sorted(counts) == truth
    assert set(counts.values()) == {1}
    assert depth(peer) == 0
    for name, value in (
        ("entries", len(truth)),
        ("held_at_kill", held),
        ("received", len(received)),
    ):
        record_property(name, value)
    record_property("duplicates_dropped", counters["duplicates"])


async def test_peer_outage_loses_nothing_and_the_cursor_never_runs_ahead(
    simulator, peer, tmp_path, record_property
):
    sim = simulator(entries=2500, seed=12)
    truth = [entry["sequence"] for entry in sim.entries()]
    config = write_config(
        tmp_path / "config.yaml",
        sim.url,
        [sink_config(peer, batch_size=25, send_timeout="5s")],
        offsets={"commit_interval": "100ms"},
    )
    log = tmp_path / "bridge.log"  # retries during the outage log more than a pipe holds
    bridge = start_logged(log, "run", "-c", str(config), "--exit-when-caught-up")
    checks = 0

    def cursor_within_what_the_peer_holds() -> None:
        nonlocal checks
        committed = cursor(tmp_path)  # read first: the peer's set only grows
        held = set(stored_sequences(peer))
        missing = [sequence for sequence in truth if sequence <= committed and sequence not in held]
        assert not missing, f"cursor {committed} ahead of the peer: {missing[:5]} missing"
        checks += 1

    try:
        wait_for(lambda: depth(peer) >= 300, 30, 0.01, "the first messages")
        peer.outage(10)
        down_at = time.monotonic()
        at_outage = depth(peer)
        assert at_outage < len(truth), "the run ended before the outage"
        while (down_for := time.monotonic() - down_at) < 10.5:
            cursor_within_what_the_peer_holds()
            if down_for < 9.5:
                assert depth(peer) == at_outage  # nothing gets through while it is down
            time.sleep(0.25)
        assert bridge.wait(60) == 0, log.read_text()
        record_property("finished_after_outage_s", round(time.monotonic() - down_at - 10, 2))
    finally:
        if bridge.poll() is None:
            stop(bridge, signal.SIGKILL)
    cursor_within_what_the_peer_holds()
    assert checks >= 20
    assert cursor(tmp_path) == truth[-1]
    held = stored_sequences(peer)
    assert set(held) == set(truth)  # at least once: none missing
    received = await receive_all(peer, len(held))
    assert {message["json"]["data"]["sequence"] for message in received} == set(truth)
    record_property("entries", len(truth))
    record_property("held_at_outage", at_outage)
    record_property("cursor_checks", checks)
    record_property("messages_held", len(held))
