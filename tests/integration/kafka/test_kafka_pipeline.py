"""Simulator → bridge (in process) → the mock cluster, read back with a real consumer and
parsed with the CloudEvents SDK's Kafka binding."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from urllib.parse import urlsplit

import orjson
import pytest
import yaml
from cloudevents.core.bindings import kafka as binding
from cloudevents.core.formats.json import JSONFormat

from bridge.config import parse_config
from bridge.runtime.pipeline import Pipeline
from tests.e2e.helpers import read_events
from tests.peers.kafka_records import Record, read_all


def bridge_config(feed_url: str, tmp_path, sink: dict, include_metadata: bool = False):
    return parse_config(
        yaml.safe_dump(
            {
                "feed": {
                    "url": feed_url,
                    "poll_interval": "50ms",
                    "include_metadata": include_metadata,
                },
                "offsets": {"path": str(tmp_path / "offsets.db")},
                "sinks": [{"name": "events", "type": "kafka", **sink}],
            }
        )
    )


async def run_until_caught_up(config) -> int:
    return await asyncio.wait_for(Pipeline(config).run(exit_when_caught_up=True), 60)


def parse(record: Record, fmt: str):
    message = binding.KafkaMessage(
        headers=dict(record.headers), key=record.key, value=record.value or b""
    )
    if fmt == "cloudevents":
        return binding.from_structured(message, JSONFormat())
    return binding.from_binary(message, JSONFormat())


def assert_each_study_in_one_partition_in_feed_order(records: list[Record], sequence_of) -> None:
    partitions: dict[bytes, set[int]] = defaultdict(set)
    last: dict[bytes, int] = {}
    for record in sorted(records, key=lambda record: (record.partition, record.offset)):
        partitions[record.key].add(record.partition)
        sequence = sequence_of(record)
        assert sequence > last.get(record.key, 0), f"study {record.key!r} out of order"
        last[record.key] = sequence
    assert all(len(found) == 1 for found in partitions.values())


@pytest.mark.parametrize("fmt", ["cloudevents", "cloudevents-binary"])
async def test_every_entry_lands_once_keyed_and_ordered_by_study(
    simulator, kafka, new_topic, tmp_path, fmt
):
    sim = simulator(entries=1500, seed=41, partitions=2)
    truth = {entry["sequence"]: entry for entry in sim.entries()}
    topic = new_topic(6)
    config = bridge_config(
        sim.url,
        tmp_path,
        {
            "bootstrap_servers": kafka.bootstrap,
            "topic": topic,
            "format": fmt,
            "headers": {"x-origin": "dicom-bridge"},
        },
    )

    assert await run_until_caught_up(config) == 0

    records = read_all(kafka.bootstrap, topic)
    events = [parse(record, fmt) for record in records]
    sequences = [event.get_data()["sequence"] for event in events]
    assert sorted(sequences) == sorted(truth)  # every sequence, exactly once
    host = urlsplit(sim.url).netloc
    for record, event, sequence in zip(records, events, sequences, strict=True):
        entry = truth[sequence]
        assert event.get_data() == entry  # the entry exactly as the feed served it
        assert event.get_id() == f"{host}/{entry['partitionName']}/{sequence}"
        assert event.get_source() == sim.url
        assert event.get_type() == f"dicom.instance.{entry['action'].lower()}d"
        assert event.get_subject().startswith(f"studies/{entry['studyInstanceUid']}/series/")
        assert record.key == entry["studyInstanceUid"].encode()
        headers = dict(record.headers)
        assert headers["x-origin"] == b"dicom-bridge"
        if fmt == "cloudevents":
            assert headers["content-type"] == b"application/cloudevents+json; charset=UTF-8"
            assert not any(name.startswith("ce_") for name in headers)
        else:
            assert headers["content-type"] == b"application/json"
            assert headers["ce_id"] == event.get_id().encode()
            assert headers["ce_partitionkey"] == record.key
    assert_each_study_in_one_partition_in_feed_order(
        records, lambda record: parse(record, fmt).get_data()["sequence"]
    )
    assert len({record.partition for record in records}) == 6


async def test_an_oversize_event_is_dead_lettered_and_the_route_goes_on(
    simulator, kafka, new_topic, tmp_path
):
    sim = simulator(entries=200, seed=42)
    [oversize] = sim.store(instances=[{"study": "9.9.9", "patient_name": "X" * 20000}])["entries"]
    sim.store(generate={"studies": 2, "series": 1, "instances": 5})
    truth = [entry["sequence"] for entry in sim.entries()]
    topic = new_topic(6)
    dead_letters = tmp_path / "dead-letters.jsonl"
    config = bridge_config(
        sim.url,
        tmp_path,
        {
            "bootstrap_servers": kafka.bootstrap,
            "topic": topic,
            "format": "raw",
            "producer": {"message.max.bytes": 16000},
            "dead_letter": {"type": "file", "path": str(dead_letters)},
        },
        include_metadata=True,
    )

    assert await run_until_caught_up(config) == 0

    delivered = sorted(
        orjson.loads(record.value)["sequence"] for record in read_all(kafka.bootstrap, topic)
    )
    assert delivered == [sequence for sequence in truth if sequence != oversize["sequence"]]
    [record], broken = read_events(dead_letters)
    assert broken == 0
    assert record["sequence"] == oversize["sequence"]
    assert record["sink"] == "events"
    assert record["reason"].startswith("MSG_SIZE_TOO_LARGE: ")
    assert record["event"]["studyInstanceUid"] == "9.9.9"


async def test_a_missing_topic_stops_the_route_with_one_line_and_keeps_its_cursor(
    simulator, kafka, tmp_path
):
    sim = simulator(entries=50, seed=43)
    config = bridge_config(
        sim.url,
        tmp_path,
        {
            "bootstrap_servers": kafka.bootstrap,
            "topic": "dicom.missing",
            "producer": {"allow.auto.create.topics": False},  # as a broker without auto-create
        },
    )
    pipeline = Pipeline(config)

    assert await asyncio.wait_for(pipeline.run(exit_when_caught_up=True), 60) == 1

    [route] = pipeline.routes
    assert route.failure == (
        "kafka: topic 'dicom.missing' does not exist (UNKNOWN_TOPIC_OR_PART); create it (or "
        "let the broker create topics automatically)"
    )
    assert route.committed == 0
