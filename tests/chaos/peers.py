"""The peers every scenario shares: one mock Kafka cluster and one AMQP (Service Bus) peer,
each a helper process started once per session. Scenarios get a topic and a queue of their
own, so what one scenario delivered never counts for another."""

from __future__ import annotations

import itertools
from typing import Self

from tests.peers.amqp_peer import AmqpPeer
from tests.peers.kafka_mock import KafkaMock

PARTITIONS = 6


class ChaosPeers:
    def __init__(self) -> None:
        self.kafka = KafkaMock(brokers=3)
        self.amqp = AmqpPeer()
        self._names = itertools.count(1)

    def start(self) -> Self:
        try:
            self.kafka.start()
            self.amqp.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self.kafka.close()
        self.amqp.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def new_topic(self, scenario: str) -> str:
        name = f"chaos.{scenario}.{next(self._names)}"
        self.kafka.create_topic(name, PARTITIONS)
        return name

    def new_queue(self, scenario: str) -> str:
        """Duplicate detection stays off (the peer's default), so re-sends are countable."""
        return f"chaos-{scenario}-{next(self._names)}"

    def heal(self) -> None:
        """Undo whatever fault a failed scenario may have left: brokers up, peer listening."""
        self.kafka.reset_faults()
        self.amqp.set(server_busy=False, reject_condition=None)
