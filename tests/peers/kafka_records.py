"""Reading records back from a Kafka cluster (the mock of `kafka_mock`, or any other).

`read_all` reads a topic once, to its current end; `Collector` reads it from the
beginning on a thread for as long as it runs, which is what long runs against the mock
need: each mock partition keeps only ~5 MB of records and silently drops older ones.
Records carry their producer timestamp (ms since the epoch), so a reader can tell which
producer incarnation wrote them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


class ReadError(Exception):
    """A consumer error, or a topic not read to its end in time."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int | None = None  # ms since the epoch (CreateTime), when the record has one


def consumer(bootstrap: str) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "tests",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "reconnect.backoff.max.ms": 500,
            "log_level": 2,  # the tests bring brokers down on purpose
        }
    )


def _assign_all(client: Any, topic: str, timeout: float) -> list[int]:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    partitions = sorted(client.list_topics(topic, timeout=timeout).topics[topic].partitions)
    client.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return partitions


def _ends(client: Any, topic: str, partitions: list[int], timeout: float) -> dict[int, int]:
    """The high watermark (next offset) of each partition."""
    from confluent_kafka import TopicPartition

    return {
        p: client.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
        for p in partitions
    }


def _record(message: Any) -> Record:
    kind, stamp = message.timestamp()
    return Record(
        message.topic(),
        message.partition(),
        message.offset(),
        message.key(),
        message.value(),
        list(message.headers() or []),
        stamp if kind else None,
    )


def _records(messages: list[Any]) -> list[Record]:
    records = []
    for message in messages:
        if message.error() is not None:
            raise ReadError(f"consumer error: {message.error()}")
        records.append(_record(message))
    return records


def read_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Record]:
    """Every record of `topic` up to its current end (the high watermark of each
    partition), so duplicates cannot hide behind a count."""
    client = consumer(bootstrap)
    try:
        partitions = _assign_all(client, topic, timeout)
        ends = _ends(client, topic, partitions, timeout)
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while any(ends.values()) and time.monotonic() < deadline:
            for record in _records(client.consume(1000, timeout=0.2)):
                records.append(record)
                if record.offset + 1 >= ends[record.partition]:
                    ends[record.partition] = 0
        if any(ends.values()):
            raise ReadError(f"{topic}: not read to its end within {timeout}s")
        return records
    finally:
        client.close()


class Collector:
    """Reads `topic` from the beginning on a thread, for as long as it runs.

    Client-side errors (negative codes: a broker down, a connection reset) are kept in
    `errors` and reading goes on, so a broker outage does not end the collection."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[Record] = []
        self.errors: list[str] = []
        self._bootstrap, self._topic = bootstrap, topic
        self._consumer = consumer(bootstrap)
        self._partitions = _assign_all(self._consumer, topic, 30.0)
        self._next: dict[int, int] = dict.fromkeys(self._partitions, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(1000, timeout=0.1):
                error = message.error()
                if error is not None and error.code() < 0:
                    self.errors.append(str(error))
                    continue
                [record] = _records([message])
                self.records.append(record)
                self._next[record.partition] = record.offset + 1

    def read_to_end(self, timeout: float = 60.0) -> list[Record]:
        """Wait until every partition was read up to its current end; the records so far."""
        client = consumer(self._bootstrap)
        try:
            ends = _ends(client, self._topic, self._partitions, timeout)
        finally:
            client.close()
        deadline = time.monotonic() + timeout
        while any(self._next[p] < end for p, end in ends.items()):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ReadError(
                    f"{self._topic}: read up to {self._next}, not to {ends} "
                    f"(errors: {self.errors[-3:]})"
                )
            time.sleep(0.05)
        return list(self.records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()
