"""A secret kept in a file is rotated without a restart: per-request users (the feed's
bearer token, the webhook's signing secret, bearer token and secret headers) send the new
value with their next request; connection-level users (Service Bus, Kafka) read it when
they connect, and the Service Bus sink connects again as soon as its file changed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import yaml
from standardwebhooks import Webhook

from bridge.config import parse_config
from bridge.core.secret import Secret
from bridge.feed import BearerToken, FeedClient
from sinks import create_sink
from sinks.servicebus import sink as servicebus_sink
from tests.factories import events
from tests.integration.webhook.helpers import OTHER_SECRET, SECRET
from tests.peers.feed_mock import StreamingMock
from tests.security.echo import EchoPeer
from tests.unit.test_servicebus_sink import FakeClient, FakeSender

CONNECTION = "Endpoint=sb://myns.example.org/;SharedAccessKeyName=send;SharedAccessKey={}"


def rotate(path: Path, value: str) -> None:
    """Replace the file's content atomically, as Kubernetes updates a mounted secret."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(value + "\n")
    os.replace(fresh, path)


def files(tmp_path: Path, **values: str) -> dict[str, Path]:
    paths = {}
    for name, value in values.items():
        paths[name] = tmp_path / name
        paths[name].write_text(value + "\n")
    return paths


def sink_config(**sink: Any):
    config = {
        "feed": {"url": "http://127.0.0.1:9"},
        "sinks": [{"name": "s", **sink}],
    }
    return parse_config(yaml.safe_dump(config)).sinks[0]


async def test_the_feed_sends_a_rotated_token_with_its_next_request(tmp_path):
    token = files(tmp_path, token="first-token")["token"]
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, content=b"[]")

    auth = BearerToken(Secret.from_file(token))
    async with FeedClient("http://dicom.test", auth=auth, transport=StreamingMock(answer)) as c:
        await c.sequence_window(0, 10, include_metadata=False)
        rotate(token, "second-token")
        await c.sequence_window(10, 10, include_metadata=False)

    assert seen == ["Bearer first-token", "Bearer second-token"]


async def test_the_webhook_signs_and_authenticates_with_rotated_files_at_once(tmp_path):
    paths = files(tmp_path, secret=SECRET, bearer="first-bearer", key="first-key")
    with EchoPeer(lambda number, request: 200) as receiver:
        config = sink_config(
            type="webhook",
            url=f"{receiver.url}/hooks",
            secret_file=str(paths["secret"]),
            bearer_token_file=str(paths["bearer"]),
            headers_file={"X-Api-Key": str(paths["key"])},
        )
        sink = create_sink(config)
        try:
            await sink.send(events(1))
            rotate(paths["secret"], f"{SECRET} {OTHER_SECRET}")  # a new key, the old one kept
            rotate(paths["bearer"], "second-bearer")
            rotate(paths["key"], "second-key")
            await sink.send(events(1))
            rotate(paths["secret"], "whsec_not base64!")  # a broken rotation: keeps the keys
            await sink.send(events(1))
        finally:
            await sink.close()
        first, second, third = receiver.seen

    assert (first.headers["authorization"], first.headers["X-Api-Key"]) == (
        "Bearer first-bearer",
        "first-key",
    )
    assert (second.headers["authorization"], second.headers["X-Api-Key"]) == (
        "Bearer second-bearer",
        "second-key",
    )
    assert _verifies(first, SECRET) and not _verifies(first, OTHER_SECRET)
    assert _verifies(second, SECRET) and _verifies(second, OTHER_SECRET)
    assert _verifies(third, OTHER_SECRET)
    assert len(second.headers["webhook-signature"].split()) == 2


def _verifies(request, secret: str) -> bool:
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        Webhook(secret).verify(request.body, headers)
    except Exception:
        return False
    return True


async def test_service_bus_connects_again_once_its_connection_string_file_changed(
    tmp_path, monkeypatch
):
    path = files(tmp_path, connection=CONNECTION.format("Zmlyc3Q="))["connection"]
    clients: list[tuple[str, FakeClient]] = []

    class Factory:
        @staticmethod
        def from_connection_string(connection_string: str, **options: Any) -> FakeClient:
            clients.append((connection_string, FakeClient([FakeSender(256 * 1024)])))
            return clients[-1][1]

    monkeypatch.setattr(servicebus_sink, "ServiceBusClient", Factory)
    config = sink_config(type="servicebus", queue="q", connection_string_file=str(path))
    sink = create_sink(config)
    try:
        await sink.send(events(2))
        await sink.send(events(2))  # the same file: the same connection
        rotate(path, CONNECTION.format("c2Vjb25k"))
        await sink.send(events(2))
    finally:
        await sink.close()

    assert [text for text, _ in clients] == [
        CONNECTION.format("Zmlyc3Q="),
        CONNECTION.format("c2Vjb25k"),
    ]
    (_, first), (_, second) = clients
    assert first.closed and len(first.senders[0].sent) == 2
    assert len(second.senders[0].sent) == 1


def test_kafka_reads_a_property_file_when_it_creates_a_producer(tmp_path):
    path = files(tmp_path, password="first-password")["password"]
    config = sink_config(
        type="kafka",
        bootstrap_servers="127.0.0.1:9",
        topic="t",
        producer={"sasl.username": "bridge"},
        producer_file={"sasl.password": str(path)},
    )
    assert config.librdkafka_properties("c")["sasl.password"] == "first-password"
    rotate(path, "second-password")
    assert config.librdkafka_properties("c")["sasl.password"] == "second-password"
    assert "password" not in repr(config).replace("sasl.password", "")


def test_a_secret_file_is_stat_ed_not_read_while_it_does_not_change(tmp_path, monkeypatch):
    path = files(tmp_path, token="the-token")["token"]
    secret = Secret.from_file(path)
    reads: list[Path] = []
    opened = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any):
        reads.append(self)
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    for _ in range(100):
        assert secret.get_secret_value() == "the-token"
    assert reads == []
