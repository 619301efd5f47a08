"""Simulator → bridge → the machine's RabbitMQ (127.0.0.1:5672), read back with aio-pika:
a 10 s cut mid-run; what the messages carry; an exchange of another type refused in one line."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator

import aio_pika
import pytest

from bridge.core.sink import DELIVERED, Permanent, SinkFatalError
from bridge.delivery.format import Formatter
from sinks import config_models, create_sink
from tests.e2e.helpers import run_bridge, write_config
from tests.factories import SOURCE, entry
from tests.integration.broker_runs import Message, outage_run
from tests.peers import rabbitmq
from tests.peers.tcp_proxy import TcpProxy


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """An exchange and a queue (bound with #) of this test's own, deleted afterwards."""
    root = f"it.{os.getpid()}.{secrets.token_hex(4)}"
    exchange, queue = f"{root}.x", f"{root}.q"
    rabbitmq.declare(exchange, queue, ["#"])
    yield exchange, queue
    rabbitmq.delete([exchange], [queue])


def sink(exchange: str, port: int = rabbitmq.PORT, **options) -> dict:
    return {
        "name": "events",
        "type": "rabbitmq",
        "url": f"amqp://guest:guest@127.0.0.1:{port}/",
        "exchange": exchange,
        "routing_key": "dicom.{action}",
        "timeout": "2s",
        **options,
    }


@pytest.mark.slow
def test_a_ten_second_cut_loses_nothing_and_the_cursor_waits(simulator, names, tmp_path):
    exchange, queue = names

    def read() -> list[Message]:
        return [
            Message(held.routing_key, held.body, held.message_id)
            for held in rabbitmq.read_queue(queue)
        ]

    with TcpProxy(rabbitmq.PORT) as proxy:
        figures = outage_run(simulator, tmp_path, proxy, sink(exchange, proxy.port), read)
    print(f"rabbitmq outage figures: {figures}")
    held = rabbitmq.read_queue(queue)
    assert all(message.persistent for message in held)
    keys = {message.routing_key for message in held}
    assert "dicom.create" in keys and keys <= {"dicom.create", "dicom.update", "dicom.delete"}


def test_binary_mode_carries_the_cloudevents_amqp_attributes(simulator, names, tmp_path):
    exchange, queue = names
    sim = simulator(entries=20, seed=3)
    config = write_config(
        tmp_path / "bridge.yaml", sim.url, [sink(exchange, format="cloudevents-binary")]
    )
    result = run_bridge("run", "-c", str(config), "--exit-when-caught-up", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    held = rabbitmq.read_queue(queue)
    assert len(held) == 20
    first = held[0]
    assert first.content_type == "application/json"
    assert first.headers["cloudEvents:specversion"] == "1.0"
    assert first.headers["cloudEvents:id"] == first.message_id
    assert first.headers["cloudEvents:type"] == "dicom.instance.created"
    assert "cloudEvents:datacontenttype" not in first.headers


async def test_an_exchange_of_another_type_stops_the_sink_in_one_line():
    exchange = f"it.{os.getpid()}.{secrets.token_hex(4)}.direct"

    async def direct() -> None:
        async with await aio_pika.connect(rabbitmq.URL) as connection:
            channel = await connection.channel()
            await channel.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT)

    await asyncio.to_thread(rabbitmq.on_thread, direct)
    try:
        model = config_models()["rabbitmq"]
        created = create_sink(model.model_validate(sink(exchange)))
        with pytest.raises(SinkFatalError) as failure:
            await created.open()
        await created.close()
        text = str(failure.value)
        assert "\n" not in text and "not a durable topic exchange" in text
        assert "guest:guest" not in text
    finally:
        await asyncio.to_thread(rabbitmq.delete, [exchange], [])


@pytest.mark.parametrize("mandatory", [True, False])
async def test_an_unroutable_message_is_permanent_when_mandatory_else_dropped(names, mandatory):
    exchange, queue = names
    await asyncio.to_thread(rabbitmq.delete, [], [queue])  # nothing bound: all unroutable
    model = config_models()["rabbitmq"]
    created = create_sink(model.model_validate(sink(exchange, mandatory=mandatory)))
    try:
        await created.open()
        [outcome] = await created.send([Formatter(SOURCE).event(entry(1))])
    finally:
        await created.close()
    if mandatory:
        assert isinstance(outcome, Permanent) and "unroutable" in outcome.reason, outcome
        assert "dicom.create" in outcome.reason
    else:
        assert outcome == DELIVERED
