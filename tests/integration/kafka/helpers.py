"""Events and sinks for the Kafka tests."""

from __future__ import annotations

from typing import Any

from sinks import create_sink
from sinks.kafka.config import Config
from sinks.kafka.sink import KafkaSink


def kafka_config(bootstrap: str, topic: str, **options: Any) -> Config:
    return Config(name="events", type="kafka", bootstrap_servers=bootstrap, topic=topic, **options)


async def open_sink(bootstrap: str, topic: str, **options: Any) -> KafkaSink:
    sink = create_sink(kafka_config(bootstrap, topic, **options))
    await sink.open()
    return sink
