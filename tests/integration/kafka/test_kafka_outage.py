"""A broker outage mid-run, through the real CLI: nothing lost, nothing duplicated."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections import Counter

import orjson
import pytest

from tests.e2e.helpers import bridge_command, stop, wait_for, write_config
from tests.peers.kafka_records import Collector, read_all

OUTAGE = 10.0


def sequences(records) -> set[int]:
    return {orjson.loads(record.value)["sequence"] for record in records}


@pytest.mark.slow
def test_a_ten_second_broker_outage_loses_and_duplicates_nothing(
    simulator, kafka, new_topic, tmp_path
):
    sim = simulator(entries=3000, seed=51)
    topic = new_topic(6)
    sink = {
        "name": "events",
        "type": "kafka",
        "bootstrap_servers": kafka.bootstrap,
        "topic": topic,
        "format": "raw",
        # Reconnect within a second of the broker's return (librdkafka backs off up to 10s).
        "producer": {"reconnect.backoff.max.ms": 1000},
    }
    config = write_config(tmp_path / "bridge.yaml", sim.url, [sink])
    log = (tmp_path / "bridge.log").open("w")
    bridge = subprocess.Popen(
        bridge_command("run", "-c", str(config)), stdout=subprocess.DEVNULL, stderr=log
    )
    collector = Collector(kafka.bootstrap, topic)
    try:
        first = {entry["sequence"] for entry in sim.entries()}
        wait_for(lambda: sequences(collector.records) >= first, 60, message="the first entries")

        # Mid-run: broker 1 (leader of a third of the partitions) goes away, the other
        # two fail produce requests with retriable errors, and new changes arrive.
        kafka.set_down(1)
        down_at = time.monotonic()
        for broker in (2, 3):
            kafka.push_broker_errors(
                broker, "Produce", "NOT_LEADER_FOR_PARTITION", "REQUEST_TIMED_OUT"
            )
        sim.store(generate={"studies": 30, "series": 1, "instances": 8})
        for study in {entry["studyInstanceUid"] for entry in sim.entries()[-240:]}:
            sim.update(study)
        expected = {entry["sequence"] for entry in sim.entries()}
        new = expected - first
        wait_for(
            lambda: sequences(collector.records) & new, 30, message="delivery during the outage"
        )
        time.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))  # the outage itself
        held_back = new - sequences(collector.records)
        kafka.set_up(1)

        wait_for(lambda: sequences(collector.records) >= expected, 60, message="every entry")
        assert stop(bridge, signal.SIGTERM) < 30
        assert bridge.returncode == 0, (tmp_path / "bridge.log").read_text()[-2000:]
    finally:
        collector.close()
        if bridge.poll() is None:
            bridge.kill()
        log.close()

    with sqlite3.connect(tmp_path / "offsets.db") as db:
        assert db.execute("select sequence from offsets").fetchall() == [(max(expected),)]
    assert held_back, "the outage held nothing back"
    assert [kafka.errors_left(broker, "Produce") for broker in (2, 3)] == [0, 0]  # all hit
    counts = Counter(
        orjson.loads(record.value)["sequence"] for record in read_all(kafka.bootstrap, topic)
    )
    assert set(counts) == expected
    assert [sequence for sequence, count in counts.items() if count > 1] == []
    print(
        f"outage figures: {len(first)} entries before, {len(new)} during the outage, "
        f"{len(held_back)} held back for {OUTAGE:.0f}s, {sum(counts.values())} records read, "
        "0 duplicates"
    )
