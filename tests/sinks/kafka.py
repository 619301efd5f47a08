"""The Kafka sink's contract harness: librdkafka's mock cluster (`tests.peers.kafka_mock`).

A topic of three partitions per test, read back to its end with a consumer. Down is every
broker down (connections refused); the sink's records then wait in librdkafka until
`message.timeout.ms`, which is short here so that an outage ends a send in seconds. The
mock has no SASL, so the refusal is the one a cluster without the idempotent-write ACL
gives: CLUSTER_AUTHORIZATION_FAILED to the producer id request; a destination gone is a
topic that does not exist (the mock cannot delete one; the sink does not create topics).
A refused event is one larger than the brokers' `message.max.bytes` (1 MB by default).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from bridge.core.event import Event
from tests.peers.kafka_mock import KafkaMock
from tests.peers.kafka_records import read_all
from tests.sinks.harness import ROUTE, Received, SinkHarness, one_event

#: Not a real credential: where a SASL password would go (the mock ignores it).
PASSWORD = "contract-kafka-password"
_topics = itertools.count(1)


class Harness(SinkHarness):
    type = "kafka"
    secrets = (PASSWORD,)

    def start(self, workdir: Path) -> None:
        self.cluster = KafkaMock(brokers=1).start()
        self.topic = ""

    def stop(self) -> None:
        self.cluster.close()

    def reset(self, workdir: Path) -> None:
        self.cluster.reset_faults()
        self.topic = f"contract.t{next(_topics)}"
        self.cluster.create_topic(self.topic, partitions=3)

    def config(self) -> dict[str, Any]:
        return {
            "name": ROUTE,
            "type": "kafka",
            "bootstrap_servers": self.cluster.bootstrap,
            "topic": self.topic,
            "close_timeout": "2s",
            "producer": {
                "allow.auto.create.topics": False,
                "sasl.password": PASSWORD,
                "message.timeout.ms": 3000,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 250,
            },
        }

    def received(self) -> list[Received]:
        return [
            Received(
                record.value or b"",
                id=None,  # structured mode: the id is in the body (binary mode: `ce_id`)
                key=record.key.decode() if record.key is not None else None,
            )
            for record in read_all(self.cluster.bootstrap, self.topic)
        ]

    def take_down(self) -> None:
        self.cluster.set_down(-1)

    def bring_back(self) -> None:
        self.cluster.set_up(-1)

    def refuse(self, sequence: int) -> Event:
        return one_event(sequence, pad=1_100_000)

    def refuse_credentials(self) -> None:
        self.cluster.push_errors("InitProducerId", "CLUSTER_AUTHORIZATION_FAILED")

    def remove_destination(self) -> None:
        self.topic = f"contract.gone{next(_topics)}"
