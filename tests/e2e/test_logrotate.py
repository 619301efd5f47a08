"""logrotate against a running bridge: the file sink's file renamed, then SIGHUP (logrotate's
`postrotate`). The bridge keeps running, lets go of the renamed file at once, and writes
everything after the rename to a new file at the configured path."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.e2e.helpers import read_events, sequences, start_bridge, stop, wait_for, write_config


def holds_open(pid: int, path: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    targets = set()
    for fd in fds.iterdir():
        try:
            targets.add(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile
    return str(path) in targets


def lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def test_sighup_after_a_rename_reopens_the_file_sinks_path(simulator, tmp_path):
    sim = simulator(entries=100, seed=65)
    events = tmp_path / "out" / "events.jsonl"
    rotated = tmp_path / "out" / "events.jsonl.1"
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        [{"name": "archive", "type": "file", "path": str(events)}],
    )
    bridge = start_bridge("run", "-c", str(config))
    try:
        wait_for(lambda: lines(events) == 100, timeout=60, message="the history delivered")
        events.rename(rotated)
        bridge.send_signal(signal.SIGHUP)
        wait_for(
            lambda: not holds_open(bridge.pid, rotated),
            timeout=30,
            message="the bridge to close the renamed file",
        )
        assert bridge.poll() is None, bridge.stderr.read()  # SIGHUP did not kill it
        written = sim.store(generate={"studies": 2, "series": 1, "instances": 3})
        wait_for(lambda: lines(events) == 6, timeout=60, message="the new studies delivered")
    finally:
        stop(bridge)
    assert bridge.returncode == 0, bridge.stderr.read()
    old, _ = read_events(rotated)
    new, _ = read_events(events)
    assert len(old) == 100
    assert sorted(sequences(new)) == sorted(entry["sequence"] for entry in written["entries"])
