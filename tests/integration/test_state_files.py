"""State that vanishes under a running bridge, or that is not what it seems, is never taken
for an empty store: the bridge stops (or refuses to start) with one line."""

from __future__ import annotations

import shutil
import signal
import sqlite3

from tests.e2e.helpers import (
    read_events,
    run_bridge,
    start_bridge,
    stop,
    wait_for,
    write_config,
)


def config_with_state(tmp_path, url):
    state = tmp_path / "state"
    sinks = [{"name": "archive", "type": "file", "path": str(tmp_path / "a.jsonl")}]
    offsets = {"path": str(state / "offsets.db"), "commit_interval": "50ms"}
    return write_config(tmp_path / "bridge.yaml", url, sinks, offsets=offsets), state


def wait_delivered(tmp_path, count):
    events = tmp_path / "a.jsonl"
    wait_for(
        lambda: events.exists() and events.read_bytes().count(b"\n") == count,
        timeout=60,
        message=f"the bridge to deliver {count} entries",
    )


def wait_committed(state, sequence):
    """Until the bridge committed `sequence`: deleting the state before that races the
    commit, which notices the deletion and stops the bridge (releasing the lock)."""

    def committed() -> bool:
        try:
            with sqlite3.connect(f"file:{state / 'offsets.db'}?mode=ro", uri=True) as db:
                return db.execute("SELECT max(sequence) FROM offsets").fetchone()[0] == sequence
        except sqlite3.Error:
            return False

    wait_for(committed, timeout=60, message=f"the bridge to commit sequence {sequence}")


def test_a_state_directory_deleted_under_the_bridge_stops_it(simulator, tmp_path):
    sim = simulator(entries=30, seed=71)
    config, state = config_with_state(tmp_path, sim.url)
    process = start_bridge("run", "-c", str(config))
    try:
        wait_delivered(tmp_path, 30)
        shutil.rmtree(state)
        sim.store(generate={"studies": 1, "series": 1, "instances": 3})  # a commit is due
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            stop(process, signal.SIGKILL)
    errors = [line for line in process.stderr.read().splitlines() if "dicom-bridge:" in line]
    assert process.returncode == 1
    assert len(errors) == 1 and "offsets.db" in errors[0] and "removed" in errors[0]


def test_a_second_bridge_is_refused_after_the_state_directory_was_deleted(simulator, tmp_path):
    sim = simulator(entries=30, seed=72)
    config, state = config_with_state(tmp_path, sim.url)
    process = start_bridge("run", "-c", str(config))
    try:
        wait_delivered(tmp_path, 30)
        wait_committed(state, sim.state()["latest_sequence"])
        shutil.rmtree(state)
        assert process.poll() is None
        second = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
        assert second.returncode == 1
        assert "another dicom-bridge uses this state" in second.stderr
        assert len(read_events(tmp_path / "a.jsonl")[0]) == 30  # nothing sent twice
    finally:
        stop(process, signal.SIGTERM)


def test_an_empty_offsets_file_is_refused_not_taken_as_a_new_store(simulator, tmp_path):
    sim = simulator(entries=30, seed=73)
    config, state = config_with_state(tmp_path, sim.url)
    state.mkdir()
    (state / "offsets.db").write_bytes(b"")  # truncated by a full disk, a bad copy...
    result = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "dicom-bridge:" in line]
    assert len(errors) == 1 and "offsets.db" in errors[0] and "empty" in errors[0]
    assert not (tmp_path / "a.jsonl").exists()
    assert (state / "offsets.db").read_bytes() == b""  # left as found
