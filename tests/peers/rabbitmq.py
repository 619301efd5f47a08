"""The machine's RabbitMQ (127.0.0.1:5672) driven from tests: users through `rabbitmqctl`,
exchanges, queues and reading back through aio-pika (on a thread of its own each time:
callers may be inside an event loop).

Reading is non-destructive: every message of the queue is fetched unacknowledged, then the
channel is closed and the broker puts them back in their places.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika

T = TypeVar("T")
PORT = 5672
URL = f"amqp://guest:guest@127.0.0.1:{PORT}/"
THREAD = "rabbitmq-admin"


@dataclass(frozen=True, slots=True)
class Held:
    routing_key: str
    body: bytes
    message_id: str | None
    headers: dict[str, Any]
    content_type: str | None
    persistent: bool


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60)


def on_thread(work: Callable[[], Awaitable[T]]) -> T:
    result: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(work()))  # type: ignore[arg-type]
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=THREAD)
    thread.start()
    thread.join(60)
    if failure:
        raise failure[0]
    return result[0]


def declare(exchange: str, queue: str, keys: list[str], url: str = URL) -> None:
    """A durable topic exchange and a queue bound to it with `keys`."""

    async def work() -> None:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            target = await channel.declare_exchange(
                exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            bound = await channel.declare_queue(queue, durable=True)
            for key in keys:
                await bound.bind(target, key)

    on_thread(work)


def delete(exchanges: list[str], queues: list[str], url: str = URL) -> None:
    async def work() -> None:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in exchanges:
                await channel.exchange_delete(exchange)

    on_thread(work)


def read_queue(queue: str, url: str = URL) -> list[Held]:
    """Every message the queue holds, in queue order, left in place."""

    async def work() -> list[Held]:
        held: list[Held] = []
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            source = await channel.get_queue(queue, ensure=True)
            while (message := await source.get(no_ack=False, fail=False)) is not None:
                held.append(
                    Held(
                        message.routing_key or "",
                        message.body,
                        message.message_id,
                        dict(message.headers or {}),
                        message.content_type,
                        message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
                    )
                )
            await channel.close()  # unacknowledged: back in the queue, in their places
        return held

    return on_thread(work)
