"""The feed's identity: a reset service is detected even after its new feed grew past the
cursor, `feed.name` keys the cursors and ids (URL aliases resume), old stores are adopted,
and `start` places a route that has no cursor yet."""

from __future__ import annotations

import asyncio
import sqlite3

import orjson
import pytest

from bridge.cli import main
from bridge.config import load_config
from bridge.runtime.pipeline import Pipeline
from tests.e2e.helpers import read_events, sequences, write_config


def archive(tmp_path, **route):
    return [{"name": "archive", "type": "file", "path": str(tmp_path / "a.jsonl"), **route}]


def run(config) -> int:
    return main(["run", "-c", str(config), "--exit-when-caught-up"])


def stored(tmp_path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "offsets.db") as db:
        return db.execute("select feed, sink, sequence, fingerprint from offsets").fetchall()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_reset_service_whose_new_feed_grew_past_the_cursor_stops_the_route(
    simulator, tmp_path, capsys, version
):
    sim = simulator(entries=200, seed=61)
    config = write_config(
        tmp_path / "bridge.yaml", sim.url, archive(tmp_path), feed={"api_version": version}
    )
    assert run(config) == 0
    sim.reset(entries=1_000, seed=62)  # a different service (or a restore), already larger
    capsys.readouterr()

    assert run(config) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "dicom-bridge:" in line]
    assert len(errors) == 1
    assert "reset" in errors[0] and "offsets set" in errors[0] and "offsets reset" in errors[0]
    events, _ = read_events(tmp_path / "a.jsonl")
    assert len(events) == 200  # nothing of the new feed
    assert run(config) == 1  # and it stays stopped until an operator decides

    assert main(["offsets", "reset", "-c", str(config), "--sink", "archive"]) == 0
    assert run(config) == 0
    events, _ = read_events(tmp_path / "a.jsonl")
    assert sorted(sequences(events[200:])) == [e["sequence"] for e in sim.entries()]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_feed_that_only_grew_is_not_taken_for_a_reset(simulator, tmp_path, version):
    sim = simulator(entries=200, seed=63)
    config = write_config(
        tmp_path / "bridge.yaml", sim.url, archive(tmp_path), feed={"api_version": version}
    )
    assert run(config) == 0
    sim.reset(entries=300, seed=63)  # the same history, 100 entries longer
    assert run(config) == 0
    events, _ = read_events(tmp_path / "a.jsonl")
    assert sorted(sequences(events)) == [e["sequence"] for e in sim.entries()]


async def test_a_reset_while_running_stops_the_route_and_keeps_the_cursor_it_had(
    simulator, tmp_path, monkeypatch
):
    monkeypatch.setattr("bridge.delivery.cursor.VERIFY_INTERVAL", 0.1)
    sim = simulator(entries=200, seed=64)
    last = sim.entries()[-1]["sequence"]
    path = write_config(
        tmp_path / "bridge.yaml", sim.url, archive(tmp_path), offsets={"commit_interval": "20ms"}
    )
    pipeline = Pipeline(load_config(path))
    [route] = pipeline.routes
    running = asyncio.create_task(pipeline.run())
    try:
        await until(lambda: route.caught_up)
        await asyncio.sleep(0.3)  # a check or more of the intact feed
        sim.reset(entries=400, seed=65)
        await until(lambda: route.failure is not None)
    finally:
        pipeline.request_stop()
        assert await running == 1
    assert "reset" in route.failure
    # Whatever of the new feed went out before the check is not taken as the cursor: the
    # route resumes nowhere until an operator decides.
    assert [row[2] for row in stored(tmp_path)] == [last]
    again = Pipeline(load_config(path))
    assert await again.run(exit_when_caught_up=True) == 1
    assert "reset" in again.routes[0].failure


def test_a_url_alias_with_the_same_feed_name_resumes_with_the_same_ids(simulator, tmp_path):
    sim = simulator(entries=100, seed=66)
    port = sim.url.rsplit(":", 1)[1]
    sinks = archive(tmp_path)
    assert run(write_config(tmp_path / "one.yaml", f"http://localhost:{port}", sinks)) == 0
    sim.store(generate={"studies": 1, "series": 1, "instances": 5})
    assert run(write_config(tmp_path / "two.yaml", f"http://LOCALHOST:{port}/", sinks)) == 0
    sim.store(generate={"studies": 1, "series": 1, "instances": 5})
    renamed = write_config(
        tmp_path / "three.yaml", sim.url, sinks, feed={"name": f"localhost:{port}"}
    )
    assert run(renamed) == 0

    events, _ = read_events(tmp_path / "a.jsonl")
    assert sorted(sequences(events)) == [e["sequence"] for e in sim.entries()]  # no repeats
    assert {event["id"].rsplit("/", 2)[0] for event in events} == {f"localhost:{port}"}
    assert events[-1]["source"] == sim.url  # the source stays the URL
    assert [row[:2] for row in stored(tmp_path)] == [(f"localhost:{port}", "archive")]


def test_a_store_keyed_by_the_url_is_adopted_without_starting_over(simulator, tmp_path, capsys):
    sim = simulator(entries=100, seed=67)
    truth = [e["sequence"] for e in sim.entries()]
    with sqlite3.connect(tmp_path / "offsets.db") as db:  # as an earlier version left it
        db.execute(
            "CREATE TABLE offsets (feed TEXT NOT NULL, sink TEXT NOT NULL, position TEXT NOT "
            "NULL, sequence INTEGER, updated_at TEXT NOT NULL, PRIMARY KEY (feed, sink)) "
            "WITHOUT ROWID"
        )
        db.execute(
            "INSERT INTO offsets VALUES (?, 'archive', ?, ?, '2024-05-10T00:00:00+00:00')",
            (sim.url, str(truth[59]), truth[59]),
        )
    config = write_config(tmp_path / "bridge.yaml", sim.url, archive(tmp_path))
    assert run(config) == 0
    events, _ = read_events(tmp_path / "a.jsonl")
    assert sequences(events) == truth[60:]
    adopted = [line for line in capsys.readouterr().err.splitlines() if "adopted" in line]
    assert len(adopted) == 2, adopted  # the old key, and the fingerprint of its cursor
    [(feed, sink, sequence, fingerprint)] = stored(tmp_path)
    name = sim.url.removeprefix("http://")
    assert (feed, sink, sequence) == (name, "archive", truth[-1])
    assert orjson.loads(fingerprint)["sequence"] == truth[-1]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_start_places_a_route_without_a_cursor(simulator, tmp_path, capsys, version):
    sim = simulator(entries=100, seed=68, reorder_rate=0)
    truth = [e["sequence"] for e in sim.entries()]
    sinks = [
        {"name": name, "type": "file", "path": str(tmp_path / f"{name}.jsonl"), **start}
        for name, start in (
            ("all", {}),
            ("new", {"start": "latest"}),
            ("from", {"start": truth[40]}),
        )
    ]
    feed = {"api_version": version, "safety_lag": "0s"}
    config = write_config(tmp_path / "bridge.yaml", sim.url, sinks, feed=feed)
    assert run(config) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if " WARNING " in line]
    assert any("start: earliest" in w for w in warnings)
    assert any("start: latest" in w and str(truth[-1]) in w for w in warnings)
    assert any(f"start: {truth[40]}" in w for w in warnings)

    def delivered(name):
        return sequences(read_events(tmp_path / f"{name}.jsonl")[0])

    assert sorted(delivered("all")) == truth
    assert delivered("new") == []
    assert sorted(delivered("from")) == truth[40:]

    written = sim.store(generate={"studies": 1, "series": 1, "instances": 4})["entries"]
    assert run(config) == 0
    assert sorted(delivered("new")) == [e["sequence"] for e in written]
    assert sorted(delivered("from")) == truth[40:] + [e["sequence"] for e in written]


async def until(condition, timeout=30.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)
