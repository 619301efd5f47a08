"""Events → Kafka records, per the CloudEvents Kafka binding (read back with the SDK)."""

from __future__ import annotations

import pytest
from cloudevents.core.bindings import kafka as binding
from cloudevents.core.formats.json import JSONFormat

from bridge.core.entry import parse_entry
from bridge.delivery.format import Formatter
from sinks.kafka._records import InvalidTopic, RecordBuilder, topic_fields
from sinks.kafka.config import Config

ENTRY = {
    "sequence": 42,
    "partitionName": "Microsoft.Default",
    "studyInstanceUid": "1.2.840.1",
    "seriesInstanceUid": "1.2.840.1.2",
    "sopInstanceUid": "1.2.840.1.2.3",
    "action": "Update",
    "timestamp": "2024-05-10T16:12:03.1234567+00:00",
    "state": "Replaced",
}


def event(fmt: str = "cloudevents", **fields):
    return Formatter("https://dicom.example", fmt).event(parse_entry({**ENTRY, **fields}))


def builder(**options) -> RecordBuilder:
    settings = {"name": "e", "type": "kafka", "bootstrap_servers": "k:9092", "topic": "dicom"}
    return RecordBuilder(Config(**{**settings, **options}))


def message(record) -> binding.KafkaMessage:
    return binding.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)


def test_structured_mode_record_parses_with_the_sdk():
    record = builder(headers={"origin": "bridge"}).build(event())
    assert record.topic == "dicom"
    assert record.key == b"1.2.840.1"
    assert record.headers == [
        ("content-type", b"application/cloudevents+json; charset=UTF-8"),
        ("origin", b"bridge"),
    ]
    parsed = binding.from_structured(message(record), JSONFormat())
    assert parsed.get_id() == "dicom.example/Microsoft.Default/42"
    assert parsed.get_type() == "dicom.instance.updated"
    assert parsed.get_extension("partitionkey") == "1.2.840.1"
    assert parsed.get_data() == ENTRY


def test_binary_mode_record_parses_with_the_sdk():
    record = builder().build(event("cloudevents-binary"))
    names = [name for name, _ in record.headers]
    assert names == [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
        "ce_time",
        "ce_partitionkey",
        "content-type",
    ]
    parsed = binding.from_binary(message(record), JSONFormat())
    assert parsed.get_id() == "dicom.example/Microsoft.Default/42"
    assert parsed.get_source() == "https://dicom.example"
    assert parsed.get_subject() == "studies/1.2.840.1/series/1.2.840.1.2/instances/1.2.840.1.2.3"
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_data() == ENTRY


def test_raw_mode_record_is_the_entry():
    record = builder(key="none").build(event("raw"))
    assert record.key is None
    assert record.headers == [("content-type", b"application/json")]
    assert record.value == event("raw").body


def test_topic_fields():
    assert topic_fields(event()) == {
        "action": "update",
        "state": "replaced",
        "partition": "Microsoft.Default",
        "type": "dicom.instance.updated",
        "study": "1.2.840.1",
        "series": "1.2.840.1.2",
        "sop": "1.2.840.1.2.3",
    }
    without_state = {key: value for key, value in ENTRY.items() if key != "state"}
    formatted = Formatter("https://dicom.example").event(parse_entry(without_state))
    assert topic_fields(formatted)["state"] == "unknown"


def test_templated_topic_is_rendered_per_event():
    records = builder(topic="dicom.{partition}.{action}")
    assert records.topic(event()) == "dicom.Microsoft.Default.update"
    assert records.topic(event(partitionName="p-2", action="Delete")) == "dicom.p-2.delete"


def test_a_rendered_topic_kafka_refuses_is_reported_per_event():
    records = builder(topic="dicom.{partition}")
    with pytest.raises(InvalidTopic, match="characters other than"):
        records.build(event(partitionName="a/b"))
    with pytest.raises(InvalidTopic, match="longer than 249"):
        records.build(event(partitionName="p" * 250))
