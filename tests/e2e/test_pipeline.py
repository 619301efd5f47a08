"""The forwarding pipeline end to end: simulator → `dicom-bridge run` → file sinks."""

from __future__ import annotations

import random
import signal
import sqlite3
import time

import pytest

from tests.e2e.helpers import (
    read_events,
    run_bridge,
    sequences,
    start_bridge,
    stop,
    wait_for,
    write_config,
)


def creates(entry: dict) -> bool:
    return entry["action"] == "Create" and entry["state"] != "Deleted"


def changes(entry: dict) -> bool:
    return entry["action"] in ("Update", "Delete")


def two_file_sinks(tmp_path, **route):
    return [
        {
            "name": "creates",
            "type": "file",
            "path": str(tmp_path / "creates.jsonl"),
            "filter": {"actions": ["create"], "skip_deleted_creates": True},
            **route,
        },
        {
            "name": "changes",
            "type": "file",
            "path": str(tmp_path / "changes.jsonl"),
            "format": "raw",
            "filter": {"actions": ["Update", "Delete"]},
            **route,
        },
    ]


def assert_study_order(events: list[dict]) -> None:
    """Events of one study appear in feed order (different studies may interleave)."""
    last: dict[str, int] = {}
    for event in events:
        data = event.get("data", event)
        study, sequence = data["studyInstanceUid"], data["sequence"]
        assert sequence > last.get(study, 0), f"study {study} out of order at {sequence}"
        last[study] = sequence


def cursors(tmp_path) -> dict[str, int]:
    """The committed cursors, read without creating anything (an empty file the test made
    would be refused by the bridge as a store that is not one)."""
    path = tmp_path / "offsets.db"
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return dict(db.execute("select sink, sequence from offsets"))


def delivered_lines(tmp_path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in tmp_path.glob("*.jsonl") if path.exists())


@pytest.mark.slow
def test_each_sink_gets_exactly_what_its_filter_admits(simulator, tmp_path):
    sim = simulator(entries=50_000, seed=21, gap_rate=0.01, max_gap=500, metadata_size=1024)
    truth = sim.entries(include_metadata=True)
    assert {e["action"] for e in truth} == {"Create", "Update", "Delete"}
    assert {e["state"] for e in truth} == {"Current", "Replaced", "Deleted"}
    config = write_config(
        tmp_path / "bridge.yaml", sim.url, two_file_sinks(tmp_path), feed={"include_metadata": True}
    )

    result = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
    assert result.returncode == 0, result.stderr

    by_sequence = {e["sequence"]: e for e in truth}
    for name, admits, fmt in (("creates", creates, "cloudevents"), ("changes", changes, "raw")):
        events, broken = read_events(tmp_path / f"{name}.jsonl")
        assert broken == 0
        expected = [e["sequence"] for e in truth if admits(e)]
        assert sorted(set(sequences(events))) == expected, name
        for event in events:
            data = event["data"] if fmt == "cloudevents" else event
            assert data == by_sequence[data["sequence"]]
        assert_study_order(events)
        assert cursors(tmp_path)[name] == truth[-1]["sequence"]
    structured, _ = read_events(tmp_path / "creates.jsonl")
    assert structured[0]["specversion"] == "1.0"
    assert structured[0]["type"] == "dicom.instance.created"


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(simulator, tmp_path):
    sim = simulator(entries=50_000, seed=22, gap_rate=0.01, max_gap=300, latency_ms=10)
    truth = sim.entries()
    max_pending = 2000
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        two_file_sinks(tmp_path, max_pending=max_pending, batch_size=50),
        feed={"prefetch": 1},
        offsets={"commit_interval": "200ms"},
    )
    rng = random.Random(5)
    kills = 0
    for _ in range(5):
        before = delivered_lines(tmp_path)
        process = start_bridge("run", "-c", str(config))
        # Once it delivers (start-up takes a while on a loaded machine), a random moment.
        wait_for(
            lambda before=before: delivered_lines(tmp_path) > before,
            timeout=60,
            message="deliveries",
        )
        time.sleep(rng.uniform(0.0, 1.0))  # the crash moment itself is what is random
        stop(process, signal.SIGKILL)
        kills += 1
        assert min(cursors(tmp_path).values(), default=0) < truth[-1]["sequence"]  # mid-run
    result = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
    assert result.returncode == 0, result.stderr

    for name, admits in (("creates", creates), ("changes", changes)):
        events, broken = read_events(tmp_path / f"{name}.jsonl")
        got = sequences(events)
        expected = [e["sequence"] for e in truth if admits(e)]
        assert sorted(set(got)) == expected, name
        duplicates = len(got) - len(set(got))
        assert duplicates + broken <= kills * 2 * max_pending, (name, duplicates, broken)


def test_sigterm_drains_commits_and_exits_zero(simulator, tmp_path):
    sim = simulator(entries=30_000, seed=23, latency_ms=20)
    truth = sim.entries()
    config = write_config(
        tmp_path / "bridge.yaml", sim.url, two_file_sinks(tmp_path), drain_timeout="5s"
    )
    process = start_bridge("run", "-c", str(config))
    wait_for(
        lambda: (
            (tmp_path / "creates.jsonl").exists()
            and (tmp_path / "creates.jsonl").stat().st_size > 0
        ),
        30,
        message="first events",
    )
    took = stop(process, signal.SIGTERM)
    assert process.returncode == 0, process.stderr.read()
    assert took < 5 + 2

    committed = cursors(tmp_path)
    assert committed["creates"] < truth[-1]["sequence"]  # stopped mid-run
    for name, admits in (("creates", creates), ("changes", changes)):
        events, broken = read_events(tmp_path / f"{name}.jsonl")
        assert broken == 0
        delivered = sequences(events)
        assert len(delivered) == len(set(delivered))
        assert_study_order(events)
        # the cursor is exactly what was delivered: nothing missing before it, nothing after
        expected = [e["sequence"] for e in truth if admits(e) and e["sequence"] <= committed[name]]
        assert sorted(delivered) == expected, name
