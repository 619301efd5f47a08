"""The Kafka sink.

`send` produces every event of a batch at once (librdkafka batches and pipelines them) and
then waits for every record's acknowledgement, as Debezium Server's Kafka sink does: an
event counts as delivered only once the brokers acknowledged it (acks=all). The producer
is idempotent, so librdkafka's own retries (NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, a
broker restart) neither duplicate nor reorder records; records of one study share a key,
hence a partition, and the route never has two batches of a study in flight.

Failures are classified in `_errors`: transient ones are retried by the route, permanent
ones dead-lettered, and authentication/authorization/unknown-topic failures stop the route.
A fatal producer error (e.g. an idempotence sequence that cannot be recovered) leaves the
producer unusable: its unacknowledged records are reported transient and the next send
creates a new producer (a new producer id), so the route re-sends them; a re-sent record
that had in fact been written appears twice (at-least-once), with the same CloudEvents id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, KafkaException

from bridge.core.sink import (
    DELIVERED,
    BaseSink,
    Outcome,
    Permanent,
    SinkError,
    SinkFatalError,
    Transient,
)
from sinks.kafka._client import ProducerClient
from sinks.kafka._errors import describe, error_of, fatal_reason, outcome
from sinks.kafka._records import InvalidTopic, RecordBuilder

if TYPE_CHECKING:
    from bridge.core.event import Event
    from sinks.kafka.config import Config

log = logging.getLogger("sinks.kafka")

#: How long opening (and `check`) may wait for the cluster's metadata.
PROBE_TIMEOUT = 10.0


class KafkaSink(BaseSink):
    def __init__(self, config: Config, *, name: str) -> None:
        self.name = name
        self._config = config
        self._records = RecordBuilder(config)
        self._fixed_topic = None if config.topic_is_template else config.topic
        self._log = logging.LoggerAdapter(log, {"sink": name})
        self._client: ProducerClient | None = None
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        """Connect and read the topic's metadata: an unreachable cluster is retried by
        the route; refused credentials or a missing topic stop it."""
        await self._ready_client()

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        if not events:
            return []
        client = await self._ready_client()
        acks = client.acks(len(events))
        refused: dict[int, Outcome] = {}  # records that never reached librdkafka's queue
        topics: list[str | None] = [None] * len(events)
        for index, event in enumerate(events):
            try:
                record = self._records.build(event)
            except InvalidTopic as exc:
                refused[index] = Permanent(str(exc))
                continue
            topics[index] = record.topic
            while True:
                try:
                    client.produce(record, acks, index)
                    break
                except BufferError:  # the local queue is full: wait for deliveries
                    await client.wait_for_room()
                except KafkaException as exc:  # refused at once (too large, unknown topic)
                    refused[index] = self._failure(client, error_of(exc), record.topic)
                    break
        outcomes: list[Outcome] = []
        for index, error in enumerate(await acks.wait()):
            if index in refused:
                outcomes.append(refused[index])
            elif error is None:
                outcomes.append(DELIVERED)
            else:
                outcomes.append(self._failure(client, error, topics[index]))
        return outcomes

    @property
    def unreachable(self) -> str | None:
        """Every broker down while records wait for them (see `Sink.unreachable`)."""
        return None if self._client is None else self._client.unreachable()

    async def check(self) -> str:
        """Reach the cluster and, for a fixed topic, read its metadata (never creating
        it); one line, within PROBE_TIMEOUT."""
        properties = self._properties() | {"allow.auto.create.topics": "false"}
        client = ProducerClient(properties, log=self._log, quiet=True)
        try:
            metadata = await client.probe(self._fixed_topic, PROBE_TIMEOUT)
        finally:
            await client.close(0)
        where = f"kafka {self._config.bootstrap_servers}"
        brokers = len(metadata.brokers)
        if self._fixed_topic is None:
            return f"{where}: reachable, {brokers} brokers (topic template not checked)"
        topic = metadata.topics[self._fixed_topic]
        self._check_topic(topic.error)
        partitions = len(topic.partitions)
        return (
            f"{where}: topic {self._fixed_topic!r} has {partitions} partitions, {brokers} brokers"
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close(self._config.close_timeout)

    # -- internals -----------------------------------------------------------------------

    def _properties(self) -> dict[str, str]:
        return self._config.librdkafka_properties(client_id=f"dicom-bridge.{self.name}")

    async def _ready_client(self) -> ProducerClient:
        """The producer, created (and probed) if there is none or the last one failed."""
        async with self._opening:
            client = self._client
            if client is not None and client.refused is not None:
                raise SinkFatalError(fatal_reason(client.refused, self._fixed_topic))
            if client is not None and client.fatal is None:
                return client
            if client is not None and client.fatal is not None:
                self._client = None
                await client.close(0)
                reason = fatal_reason(client.fatal, self._fixed_topic)
                if reason is not None:
                    raise SinkFatalError(reason)
                self._log.warning("creating a new kafka producer after a fatal error")
            client = ProducerClient(self._properties(), log=self._log)
            try:
                metadata = await client.probe(self._fixed_topic, PROBE_TIMEOUT)
                if self._fixed_topic is not None:
                    self._check_topic(metadata.topics[self._fixed_topic].error)
            except BaseException:
                await client.close(0)
                raise
            self._client = client
            return client

    def _check_topic(self, error: KafkaError | None) -> None:
        """Stop on a topic that is missing or forbidden; other metadata errors are worth
        another try (SinkError: the route opens again after a backoff)."""
        if error is None or error.code() == KafkaError.LEADER_NOT_AVAILABLE:
            return  # LEADER_NOT_AVAILABLE: being created (auto-creation), usable shortly
        reason = fatal_reason(error, self._fixed_topic)
        if reason is not None:
            raise SinkFatalError(reason)
        raise SinkError(f"kafka: topic {self._fixed_topic!r}: {describe(error)}")

    def _failure(self, client: ProducerClient, error: KafkaError, topic: str | None) -> Outcome:
        """The outcome of a record that failed with `error` (may raise SinkFatalError)."""
        if error.code() == KafkaError._FATAL and client.fatal is None:
            client.fatal = error  # noticed by produce() before the poll thread saw it
        if client.fatal is not None:
            reason = fatal_reason(client.fatal, topic)
            if reason is not None:
                raise SinkFatalError(reason)
            return Transient(
                f"the producer failed ({describe(client.fatal)}); a new one is created"
            )
        return outcome(error, topic, client.recent_error())


def create(config: Config, *, name: str) -> KafkaSink:
    return KafkaSink(config, name=name)
