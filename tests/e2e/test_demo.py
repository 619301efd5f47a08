"""`dicom-bridge demo` after `demo --follow`: the fresh simulator is behind the cursors the
follow run stored, and the demo starts its cursors over instead of stopping."""

from __future__ import annotations

import shutil
import signal
import socket
from pathlib import Path

from tests.e2e.helpers import read_events, run_bridge, sequences, start_bridge, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = 300


def free_port() -> int:
    """A port to run both demos on: the cursors' key is the feed URL, port included."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_demo_after_a_follow_run_starts_its_cursors_over(tmp_path, simulator):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    output = tmp_path / "out" / "events.jsonl"
    port = str(free_port())
    demo = ["demo", "--port", port, "--entries", str(ENTRIES)]

    follow = start_bridge(*demo, "--follow", cwd=tmp_path)
    try:
        wait_for(  # the history, then at least one appended study delivered
            lambda: output.exists() and len(output.read_bytes().splitlines()) > ENTRIES,
            timeout=90,
            message="the follow run to deliver an appended study",
        )
    finally:
        stop(follow, signal.SIGINT)
    assert follow.returncode == 0, follow.stderr.read()
    before, _ = read_events(output)

    result = run_bridge(*demo, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ahead of this fresh simulator" in result.stdout
    assert "every sink is caught up" in result.stdout
    after, broken = read_events(output)
    feed = [entry["sequence"] for entry in simulator(entries=ENTRIES, seed=1).entries()]
    assert sorted(sequences(after[len(before) :])) == feed  # the whole feed, from its start
    assert broken == 0

    again = run_bridge(*demo, cwd=tmp_path)  # and then resumes as before: nothing to do
    assert again.returncode == 0, again.stderr
    assert "ahead of" not in again.stdout
    assert len(read_events(output)[0]) == len(after)


def test_a_demo_on_another_seed_starts_its_cursors_over(tmp_path, simulator):
    """Another `--seed` builds another feed below the same cursors: their entries differ."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    output = tmp_path / "out" / "events.jsonl"
    demo = ["demo", "--port", str(free_port())]
    first = run_bridge(*demo, "--seed", "1", "--entries", str(ENTRIES), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before, _ = read_events(output)

    # Larger: the cursor lies inside the new feed, only its entry tells them apart.
    result = run_bridge(*demo, "--seed", "2", "--entries", str(2 * ENTRIES), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not in this fresh simulator" in result.stdout
    after, _ = read_events(output)
    feed = [entry["sequence"] for entry in simulator(entries=2 * ENTRIES, seed=2).entries()]
    assert sorted(sequences(after[len(before) :])) == feed
