"""What the bridge logs at INFO without a terminal: a start summary, each route's catch-up,
progress while behind, route state changes once each, repeated warnings counted, and an
exit summary; in text and in JSON. Lines stay bounded while a sink is down."""

from __future__ import annotations

import json
import math
import re
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import run_bridge, start_bridge, stop, wait_for, write_config
from tests.peers.webhook_receiver import WebhookReceiver

TWO_ROUTES = ("archive", "copy")


def two_file_sinks(tmp_path):
    return [
        {"name": name, "type": "file", "path": str(tmp_path / f"{name}.jsonl")}
        for name in TWO_ROUTES
    ]


def records(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines()]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_catch_up_and_a_resume_tell_where_each_route_starts_and_ends(simulator, tmp_path, fmt):
    sim = simulator(entries=1_500, seed=61)
    config = write_config(tmp_path / "bridge.yaml", sim.url, two_file_sinks(tmp_path))
    arguments = ("--log-format", fmt, "run", "-c", str(config), "--exit-when-caught-up")

    first = run_bridge(*arguments)
    assert first.returncode == 0, first.stderr
    before = sim.state()["latest_sequence"]
    sim.store(generate={"studies": 2, "series": 1, "instances": 5})  # 10 more
    after = sim.state()["latest_sequence"]
    resumed = run_bridge(*arguments)
    assert resumed.returncode == 0, resumed.stderr

    runs = ((first.stderr, None, before, 1_500), (resumed.stderr, before, after, 10))
    for stderr, stored, end, delivered in runs:
        if fmt == "json":
            check_json(records(stderr), stored, end, delivered)
        else:
            check_text(stderr, stored, end, delivered)


def check_json(lines: list[dict], stored: int | None, end: int, delivered: int) -> None:
    start = [line for line in lines if line.get("event") == "start"]
    assert len(start) == 1 and start[0]["api_version"] == "v1", lines
    routes = {line["sink"]: line for line in lines if line.get("event") == "route"}
    assert set(routes) == set(TWO_ROUTES)
    for route in routes.values():
        assert route["sink_type"] == "file" and route["stored"] is (stored is not None)
        assert route["cursor"] == stored
    caught_up = {
        line["sink"]: line["position"] for line in lines if line.get("event") == "caught_up"
    }
    assert caught_up == {name: end for name in TWO_ROUTES}, lines
    exits = [line for line in lines if line.get("event") == "exit"]
    by_sink = {line["sink"]: line for line in exits if "sink" in line}
    assert set(by_sink) == set(TWO_ROUTES)
    for line in by_sink.values():
        assert (line["position"], line["latest"], line["state"]) == (end, end, "caught up")
        assert (line["delivered"], line["dead_lettered"]) == (delivered, 0)
    (total,) = [line for line in exits if "sink" not in line]
    assert (total["delivered"], total["dead_lettered"]) == (2 * delivered, 0)
    assert exits == lines[-3:], "the exit summary comes last"


def check_text(stderr: str, stored: int | None, end: int, delivered: int) -> None:
    starting = r"INFO +bridge\.run: starting: feed http://127\.0\.0\.1:\d+ \(api v1\), offsets "
    assert re.search(starting + r"sqlite \S*offsets\.db, 2 routes\n", stderr), stderr
    for name in TWO_ROUTES:
        where = (
            f"resumes from its stored cursor at sequence {stored:,}"
            if stored
            else "has no stored cursor: starts at earliest"
        )
        assert f"sink={name}: route {name}: file sink, {where}\n" in stderr, stderr
        assert f"sink={name}: caught up at sequence {end:,}\n" in stderr, stderr
        summary = (
            f"sink={name}: at exit, caught up: {delivered:,} delivered, 0 dead-lettered, "
            f"0 filtered out; cursor at sequence {end:,} of {end:,}\n"
        )
        assert summary in stderr, stderr
    total = f"{2 * delivered:,} events delivered, 0 dead-lettered\n"
    assert re.search(rf"exiting after [\d.]+s: {total}$", stderr), stderr
    assert "ERROR" not in stderr, stderr


def test_progress_lines_while_behind_without_a_terminal(simulator, tmp_path):
    sim = simulator(entries=3_000, seed=62, latency_ms=30)
    latest = sim.state()["latest_sequence"]
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        two_file_sinks(tmp_path)[:1],
        feed={"page_size": 50, "prefetch": 1},
        logs={"progress_interval": "200ms"},
    )
    result = run_bridge("--log-format", "json", "run", "-c", str(config), "--exit-when-caught-up")
    assert result.returncode == 0, result.stderr
    progress = [line for line in records(result.stderr) if line.get("event") == "progress"]
    known = [line for line in progress if line["lag_entries"] is not None]
    assert known, result.stderr
    for line in known:
        assert line["sink"] == "archive" and line["lag_entries"] > 0
        assert line["position"] + line["lag_entries"] == latest
    assert any(line["rate"] > 0 and line["eta_seconds"] is not None for line in known)
    pattern = rf"behind: at sequence [\d,]+ of {latest:,}, [\d,]+ entries to go, [\d,]+ entries/s"
    assert re.match(pattern, known[-1]["message"]), known[-1]


def test_a_sink_down_for_a_while_logs_a_bounded_number_of_lines(simulator, tmp_path):
    """Two webhook routes to a receiver answering 503 for `OUTAGE` seconds: `hooks`
    dead-letters what fails for 300 ms (hundreds of dead letters), `waiting` retries
    until the receiver is back. Intervals are 0.5 s, so the outage spans as many intervals
    as 5 minutes do at the default 30 s: the lines grow with the intervals, not the events."""
    outage, interval = 5.0, 0.5
    sim = simulator(entries=2_000, seed=63)
    receiver = WebhookReceiver().start()
    try:
        receiver.set_faults(rate_503=1.0)
        retry = {"initial": "10ms", "max": "50ms"}
        sinks = [
            {
                "name": "hooks",
                "type": "webhook",
                "url": receiver.url,
                "retry": {**retry, "max_elapsed": "300ms"},
                "dead_letter": {"type": "file", "path": str(tmp_path / "dead.jsonl")},
            },
            {"name": "waiting", "type": "webhook", "url": receiver.url, "retry": retry},
        ]
        config = write_config(
            tmp_path / "bridge.yaml",
            sim.url,
            sinks,
            logs={"progress_interval": f"{interval}s", "summary_interval": f"{interval}s"},
        )
        started = time.monotonic()
        process = start_bridge("run", "-c", str(config), "--exit-when-caught-up")
        try:
            wait_for(lambda: receiver.count(503) > 0, 60, 0.05, "the first request")
            down = time.monotonic()  # the outage as the bridge sees it
            wait_for(lambda: time.monotonic() - down > outage, outage + 5, 0.1, "the outage")
            # Each 503 a retry warning, each dead letter a warning, were they not counted.
            assert receiver.count(503) > 100, "the receiver was not asked enough"
            receiver.set_faults(rate_503=0.0)
            assert process.wait(60) == 0, process.stderr.read()
        finally:
            if process.poll() is None:
                stop(process)
        elapsed = time.monotonic() - started
        stderr = process.stderr.read()
    finally:
        receiver.stop()
    lines = stderr.splitlines()
    dead = len(Path(tmp_path / "dead.jsonl").read_text().splitlines())
    intervals = math.ceil(elapsed / interval)
    # At start 3 + 2 (no stored cursor), at the end 2 caught up + 3 summary, one recovered;
    # per interval at most: 2 progress lines, and for each route the counts of its retry
    # warnings, of its dead letters (hooks) and of its state line.
    bound = 11 + intervals * (2 + 2 * 3)
    print(
        f"{len(lines)} lines in {elapsed:.1f}s ({intervals} intervals, bound {bound}), "
        f"{dead} dead letters, {receiver.count(503)} answers 503"
    )
    assert dead > 20, stderr
    assert len(lines) <= bound, stderr
    for name in ("hooks", "waiting"):
        assert stderr.count(f"bridge.run sink={name}: retrying: ") == 1, stderr
    assert stderr.count("bridge.run sink=waiting: recovered after ") == 1, stderr
    # Each dead letter is told: in a line of its own, or counted in a "more like this" line.
    alone = [line for line in lines if re.search(r"sink=hooks: sequence \d+ dead-lettered: ", line)]
    counted = [
        int(m[1])
        for m in re.finditer(
            r": (\d+) more like this in the last [\d.]+s \(last: sequence \d+ "
            r"dead-lettered",
            stderr,
        )
    ]
    assert len(alone) + sum(counted) == dead, f"{len(alone)} lines, {counted} counted, {dead}"
    assert len(alone) + len(counted) <= 1 + intervals, stderr


def test_a_bridge_that_could_not_start_gives_no_exit_summary(simulator, tmp_path):
    sim = simulator(entries=10, seed=65)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = write_config(
            tmp_path / "bridge.yaml", sim.url, two_file_sinks(tmp_path), http={"listen": address}
        )
        result = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
    assert result.returncode == 1, result.stderr
    assert "address already in use" in result.stderr, result.stderr
    assert "at exit" not in result.stderr and "exiting after" not in result.stderr, result.stderr
