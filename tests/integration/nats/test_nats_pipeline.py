"""Simulator → bridge → the machine's NATS server with JetStream (127.0.0.1:4222), read back
with nats-py: a 10 s cut mid-run, and exactly once across three SIGKILLs of the bridge."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections import Counter
from collections.abc import Iterator

import nats
import pytest

from bridge.core.sink import DELIVERED
from bridge.delivery.format import Formatter
from sinks import config_models, create_sink
from tests.factories import SOURCE, entry
from tests.integration.broker_runs import Message, assert_delivered, kill_run, outage_run
from tests.peers.nats_server import read_stream
from tests.peers.tcp_proxy import TcpProxy

PORT = 4222
URL = f"nats://127.0.0.1:{PORT}"


def delete_stream(name: str) -> None:
    async def delete() -> None:
        client = await nats.connect(URL, allow_reconnect=False)
        try:
            await client.jetstream().delete_stream(name)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await client.close()

    thread = threading.Thread(target=lambda: asyncio.run(delete()))
    thread.start()
    thread.join(30)


@pytest.fixture
def stream() -> Iterator[str]:
    """A stream (and subjects) of this test's own, deleted afterwards."""
    name = f"IT_{os.getpid()}_{secrets.token_hex(4)}"
    yield name
    delete_stream(name)


def reader(stream: str):
    def read() -> list[Message]:
        return [
            Message(subject, data, headers.get("Nats-Msg-Id"))
            for subject, headers, data in read_stream(URL, stream)
        ]

    return read


def sink(stream: str, port: int = PORT) -> dict:
    return {
        "name": "events",
        "type": "nats",
        "servers": f"nats://127.0.0.1:{port}",
        "subject": f"it.{stream}." + "{action}",
        "stream": stream,
        "timeout": "2s",
    }


@pytest.mark.slow
def test_a_ten_second_cut_loses_nothing_and_the_cursor_waits(simulator, stream, tmp_path):
    with TcpProxy(PORT) as proxy:
        figures = outage_run(simulator, tmp_path, proxy, sink(stream, proxy.port), reader(stream))
    print(f"nats outage figures: {figures}")


@pytest.mark.slow
def test_exactly_once_across_three_sigkills(simulator, stream, tmp_path):
    messages, expected = kill_run(simulator, tmp_path, sink(stream), reader(stream), kills=3)
    counts = assert_delivered(messages, expected)
    assert [sequence for sequence, count in counts.items() if count > 1] == []
    assert Counter(counts.values()) == {1: len(expected)}
    print(f"nats kill figures: {len(expected)} entries, 3 SIGKILLs, {len(messages)} messages")


async def test_binary_mode_carries_the_attributes_as_ce_headers(stream):
    formatter = Formatter(SOURCE, "cloudevents-binary")
    events = [formatter.event(entry(sequence)) for sequence in range(1, 4)]
    settings = {**sink(stream), "format": "cloudevents-binary"}
    created = create_sink(config_models()["nats"].model_validate(settings))
    try:
        await created.open()
        assert await created.send(events) == [DELIVERED] * 3
    finally:
        await created.close()
    held = await asyncio.to_thread(read_stream, URL, stream)
    subject, headers, data = held[0]
    assert subject == f"it.{stream}.create"
    assert headers["Nats-Msg-Id"] == headers["ce-id"] == events[0].id
    assert headers["ce-specversion"] == "1.0"
    assert headers["Content-Type"] == "application/json"
    assert "ce-datacontenttype" not in headers
    assert data == events[0].body
