"""Bare sinks for the baselines: the same client and payloads as the bridge's sinks, and
nothing else (no route, no cursor, no retries)."""

from __future__ import annotations

import os
from pathlib import Path


class BareFile:
    """Appends lines and fsyncs, as the file sink does per batch."""

    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def send(self, bodies: list[bytes]) -> None:
        """Write `bodies` (one line each) durably."""
        os.write(self.fd, b"".join(body + b"\n" for body in bodies))
        os.fsync(self.fd)

    def send_async(self, bodies: list[bytes]) -> None:
        self.send(bodies)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        os.close(self.fd)


class BareKafka:
    """An idempotent producer with the bridge's default batching, keyed like the sink."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self.failed = 0
        self.producer.produce(topic, b"warm-up")  # connected, producer id acquired: not timed
        self.producer.flush(30)

    def _delivered(self, error, message) -> None:
        if error is not None:
            self.failed += 1

    def send_async(self, bodies: list[bytes], keys: list[bytes] | None = None) -> None:
        """Queue `bodies` without waiting for the broker."""
        for index, body in enumerate(bodies):
            while True:
                try:
                    self.producer.produce(
                        self.topic, body, keys[index] if keys else None, on_delivery=self._delivered
                    )
                    break
                except BufferError:
                    self.producer.poll(0.01)
            self.producer.poll(0)

    def send(self, bodies: list[bytes], keys: list[bytes] | None = None) -> None:
        """Send and wait for every acknowledgement (a synchronous loop's "send, wait")."""
        self.send_async(bodies, keys)
        self.flush()

    def flush(self) -> None:
        self.producer.flush(60)

    def close(self) -> None:
        self.flush()


def bare_sink(kind: str, target: str):
    """`file` (target: a path) or `kafka` (target: `bootstrap/topic`)."""
    if kind == "file":
        return BareFile(target)
    bootstrap, topic = target.rsplit("/", 1)
    return BareKafka(bootstrap, topic)
