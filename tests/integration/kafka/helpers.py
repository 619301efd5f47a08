"""Events and sinks for the Kafka tests."""

from __future__ import annotations

from typing import Any

from bridge.envelope import Event, Formatter
from bridge.feed import parse_entry
from sinks import create_sink
from sinks.kafka.config import Config
from sinks.kafka.sink import KafkaSink


def kafka_config(bootstrap: str, topic: str, **options: Any) -> Config:
    return Config(name="events", type="kafka", bootstrap_servers=bootstrap, topic=topic, **options)


async def open_sink(bootstrap: str, topic: str, **options: Any) -> KafkaSink:
    sink = create_sink(kafka_config(bootstrap, topic, **options))
    await sink.open()
    return sink


def make_events(
    count: int, *, studies: int = 5, fmt: str = "cloudevents", first: int = 1, **fields: str
) -> list[Event]:
    """`count` formatted events, sequences from `first`, spread over `studies` studies."""
    formatter = Formatter("https://dicom.example", fmt)  # type: ignore[arg-type]
    return [
        formatter.event(
            parse_entry(
                {
                    "sequence": sequence,
                    "partitionName": "Microsoft.Default",
                    "studyInstanceUid": f"1.2.{sequence % studies}",
                    "seriesInstanceUid": f"1.2.{sequence % studies}.1",
                    "sopInstanceUid": f"1.2.{sequence % studies}.1.{sequence}",
                    "action": "Create",
                    "timestamp": "2024-05-10T16:12:03.1234567+00:00",
                    "state": "Current",
                    **fields,
                }
            )
        )
        for sequence in range(first, first + count)
    ]
