"""The producer bridge (poll thread, futures) with an in-process fake of the Producer, for
what the mock cluster cannot do: refused credentials, and secrets in librdkafka's logs."""

from __future__ import annotations

import asyncio
import logging
import queue
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError

from bridge.core.sink import DELIVERED, SinkFatalError
from sinks import create_sink
from sinks.kafka import _client
from sinks.kafka.config import Config
from tests.factories import events

SECRET = "hunter2-very-secret"


class FakeProducer:
    """Queues records; `poll` runs the actions a test scripts (on the poll thread)."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.queued: list[Any] = []
        self.actions: queue.SimpleQueue = queue.SimpleQueue()
        FakeProducer.last = self

    ack_at_once = False  # acknowledge inside produce(), before the sink counts the record

    def produce(self, topic, value, key, headers, on_delivery) -> None:
        if self.ack_at_once:
            on_delivery(None, None)
        else:
            self.queued.append(on_delivery)

    def poll(self, timeout: float) -> int:
        try:
            action = self.actions.get(timeout=timeout)
        except queue.Empty:
            return 0
        action(self)
        return 1

    def deliver_all(self) -> None:
        queued, self.queued = self.queued, []
        for on_delivery in queued:
            on_delivery(None, None)

    def list_topics(self, topic, timeout):
        partitions = {0: None}
        return SimpleNamespace(
            brokers={1: None}, topics={topic: SimpleNamespace(error=None, partitions=partitions)}
        )

    def purge(self) -> None:
        self.queued = []

    def __len__(self) -> int:
        return len(self.queued)

    def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(_client, "Producer", FakeProducer)


@pytest.fixture
def records():
    """Log records of the sink's logger (the suite runs without pytest's logging plugin)."""
    captured: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = captured.append
    logger = logging.getLogger("sinks.kafka")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield captured
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


async def until(condition, timeout: float = 5.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def open_sink():
    config = Config(
        name="events",
        type="kafka",
        bootstrap_servers="k:9092",
        topic="dicom",
        producer={"sasl.password": SECRET},
        close_timeout="100ms",
    )
    sink = create_sink(config)
    await sink.open()
    return sink


async def test_deliveries_resolve_on_the_event_loop(fake):
    sink = await open_sink()
    try:
        sending = asyncio.create_task(sink.send(events(3)))
        await until(lambda: len(FakeProducer.last.queued) == 3)
        assert not sending.done()
        FakeProducer.last.actions.put(FakeProducer.deliver_all)
        assert await asyncio.wait_for(sending, 5) == [DELIVERED] * 3
        assert FakeProducer.last.conf["sasl.password"] == SECRET
    finally:
        await sink.close()


async def test_an_acknowledgement_faster_than_the_bookkeeping_still_counts(fake, monkeypatch):
    monkeypatch.setattr(FakeProducer, "ack_at_once", True)
    sink = await open_sink()
    try:
        assert await asyncio.wait_for(sink.send(events(4)), 5) == [DELIVERED] * 4
    finally:
        await sink.close()


async def test_refused_credentials_fail_pending_sends_at_once_without_the_secret(fake):
    sink = await open_sink()
    try:
        sending = asyncio.create_task(sink.send(events(2)))
        await until(lambda: len(FakeProducer.last.queued) == 2)
        refused = KafkaError(
            KafkaError._AUTHENTICATION,
            f"SASL authentication error: invalid credentials (password {SECRET})",
        )
        FakeProducer.last.actions.put(lambda producer: producer.conf["error_cb"](refused))
        with pytest.raises(SinkFatalError, match="authentication failed") as failure:
            await asyncio.wait_for(sending, 5)
        assert SECRET not in str(failure.value)
        with pytest.raises(SinkFatalError, match="authentication failed"):
            await sink.send(events(1))  # the sink stays refused
    finally:
        await sink.close()


async def test_librdkafka_log_lines_are_masked_and_at_most_warnings(fake, records):
    sink = await open_sink()
    try:
        line = f"Connect failed: sasl.password={SECRET}"
        FakeProducer.last.actions.put(
            lambda producer: producer.conf["logger"].log(40, "%s [%s] %s", "FAIL", "rk", line)
        )
        await until(lambda: any("FAIL" in record.getMessage() for record in records))
    finally:
        await sink.close()
    [record] = [record for record in records if "FAIL" in record.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.sink == "events"
    assert record.getMessage() == "librdkafka FAIL: Connect failed: sasl.password=**********"


async def test_records_unacknowledged_at_close_are_reported_transient(fake):
    sink = await open_sink()
    sending = asyncio.create_task(sink.send(events(2)))
    await until(lambda: len(FakeProducer.last.queued) == 2)
    await sink.close()
    outcomes = await asyncio.wait_for(sending, 5)
    assert [outcome.reason for outcome in outcomes] == [
        "_DESTROY: the producer was closed (topic dicom)"
    ] * 2
