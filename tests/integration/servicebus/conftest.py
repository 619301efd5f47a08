"""Fixtures and helpers of the Service Bus sink tests: the AMQP peer, reading messages back
with the SDK's receiver, and bridge configs routing to the peer."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusReceiveMode
from azure.servicebus.aio import ServiceBusClient

from bridge.config import parse_config
from bridge.runtime.pipeline import Pipeline
from tests.e2e.helpers import write_config
from tests.peers.amqp_peer import AmqpPeer

QUEUE = "dicom-changes"


@pytest.fixture
def peer() -> Iterator[AmqpPeer]:
    with AmqpPeer() as started:
        yield started


async def run_pipeline(url: str, tmp_path: Path, *sinks: dict, **top: Any) -> Pipeline:
    """Run the bridge in process until it caught up; `top` as in `write_config`."""
    path = write_config(tmp_path / "config.yaml", url, list(sinks), **top)
    pipeline = Pipeline(parse_config(path.read_text()))
    assert await pipeline.run(exit_when_caught_up=True) == 0
    return pipeline


def sink_config(peer: AmqpPeer, **options: Any) -> dict[str, Any]:
    """A servicebus route to the peer's queue, retrying fast (the tests' outages are short)."""
    return {
        "name": "queue",
        "type": "servicebus",
        "connection_string": peer.connection_string,
        "queue": QUEUE,
        "retry": {"initial": "50ms", "max": "500ms"},
        **options,
    }


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def as_dict(message: Any) -> dict[str, Any]:
    """What a consumer sees of a received message (the SDK returns property keys as bytes)."""
    body = b"".join(message.body)
    return {
        "message_id": message.message_id,
        "session_id": message.session_id,
        "subject": message.subject,
        "content_type": message.content_type,
        "time_to_live": message.time_to_live,
        "application_properties": {
            _text(key): _text(value)
            for key, value in (message.application_properties or {}).items()
        },
        "body": body,
        "json": orjson.loads(body),
    }


async def receive_all(
    peer: AmqpPeer, count: int, *, queue: str = QUEUE, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Read `count` messages with the SDK's receiver (receive-and-delete), oldest first."""
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    async with ServiceBusClient.from_connection_string(peer.connection_string) as client:
        receiver = client.get_queue_receiver(
            queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, prefetch_count=500
        )
        async with receiver:
            while len(received) < count:
                if time.monotonic() > deadline:
                    raise AssertionError(f"received {len(received)} of {count} messages")
                batch = await receiver.receive_messages(max_message_count=500, max_wait_time=1)
                received += [as_dict(message) for message in batch]
    return received


async def receive_session(peer: AmqpPeer, *, queue: str = QUEUE) -> tuple[str, list[dict]]:
    """Lock the next available session and read all its messages (peek-lock, completed)."""
    async with ServiceBusClient.from_connection_string(peer.connection_string) as client:
        receiver = client.get_queue_receiver(queue, session_id=NEXT_AVAILABLE_SESSION)
        async with receiver:
            messages: list[Any] = []
            while batch := await receiver.receive_messages(max_message_count=100, max_wait_time=1):
                for message in batch:
                    await receiver.complete_message(message)
                messages += batch
            return receiver.session.session_id, [as_dict(m) for m in messages]


def stored_sequences(peer: AmqpPeer, queue: str = QUEUE) -> list[int]:
    """The change-feed sequence of every message the peer holds, in arrival order."""
    return [_sequence(message) for message in peer.messages(queue)]


def _sequence(message: dict[str, Any]) -> int:
    body = message.get("body")
    if body is None:
        body = base64.b64decode(message["body_base64"])
    document = orjson.loads(body)
    return document["data"]["sequence"] if "data" in document else document["sequence"]
