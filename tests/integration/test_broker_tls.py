"""The redis and nats sinks over TLS (rediss://, tls://) to servers of the test's own (the
machine's redis-server and nats-server binaries with a throwaway CA's certificate): events
delivered with the CA trusted, and an untrusted server refused in one line.

RabbitMQ's amqps:// goes to the machine's broker through a TLS-terminating proxy of the
test's own: the broker has no TLS listener."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bridge.core.sink import DELIVERED, SinkError
from sinks import config_models, create_sink
from tests.integration.webhook.certs import Pki, make_pki
from tests.peers import rabbitmq
from tests.peers.nats_server import NatsServer, free_port, read_stream
from tests.peers.tcp_proxy import TcpProxy
from tests.sinks.harness import make_events

STUDIES = ("1.2.840.1", "1.2.840.2")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir()
    return make_pki(directory)


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not listen"
            time.sleep(0.05)


@pytest.fixture
def redis_tls(pki: Pki, tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed on this machine"
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port", "0",
            "--tls-port", str(port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(pki.server_cert),
            "--tls-key-file", str(pki.server_key),
            "--tls-ca-cert-file", str(pki.ca),
            "--tls-auth-clients", "no",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def sink_of(settings: dict):
    return create_sink(config_models()[settings["type"]].model_validate(settings))


async def refuses_the_untrusted_server(settings: dict) -> None:
    """Without the throwaway CA (the system's CAs do not know it) the sink does not open,
    and says why in one line."""
    untrusted = sink_of(settings)
    with pytest.raises(SinkError) as failure:
        await untrusted.open()
    await untrusted.close()
    assert "\n" not in str(failure.value)
    assert "certificate" in str(failure.value).lower(), failure.value


async def test_rediss_delivers_with_the_ca_trusted_and_refuses_an_untrusted_server(redis_tls, pki):
    settings = {
        "name": "tls",
        "type": "redis",
        "url": f"rediss://127.0.0.1:{redis_tls}/0",
        "stream": "tls.events",
        "timeout": "3s",
    }
    sink = sink_of({**settings, "tls": {"ca_file": str(pki.ca)}})
    try:
        await sink.open()
        events = make_events(1, 10, STUDIES)
        assert await sink.send(events) == [DELIVERED] * 10
    finally:
        await sink.close()
    reader = redis.Redis(host="127.0.0.1", port=redis_tls, ssl=True, ssl_ca_certs=str(pki.ca))
    held = [fields[b"id"].decode() for _, fields in reader.xrange("tls.events")]
    reader.close()
    assert held == [event.id for event in events]

    await refuses_the_untrusted_server(settings)


async def test_nats_over_tls_delivers_with_the_ca_trusted_and_refuses_an_untrusted_server(
    pki, tmp_path
):
    server = NatsServer(
        tmp_path, user="tls", password="tls-password", tls=(pki.server_cert, pki.server_key)
    ).start()
    settings = {
        "name": "tls",
        "type": "nats",
        "servers": server.url,
        "subject": "tls.{action}",
        "stream": "TLS",
        "user": "tls",
        "password": "tls-password",
        "timeout": "3s",
    }
    try:
        sink = sink_of({**settings, "tls": {"ca_file": str(pki.ca)}})
        try:
            events = make_events(1, 10, STUDIES)
            await sink.open()
            assert await sink.send(events) == [DELIVERED] * 10
        finally:
            await sink.close()
        context = ssl.create_default_context(cafile=str(pki.ca))
        held = read_stream(server.url, "TLS", user="tls", password="tls-password", tls=context)
        assert [headers["Nats-Msg-Id"] for _, headers, _ in held] == [e.id for e in events]

        await refuses_the_untrusted_server(settings)
    finally:
        server.stop()


async def test_amqps_delivers_with_the_ca_trusted_and_refuses_an_untrusted_server(pki):
    """amqps:// to the machine's RabbitMQ through a TLS-terminating proxy of the test's own
    (the broker itself has no TLS listener)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    name = f"tls.{os.getpid()}.{secrets.token_hex(4)}"
    await asyncio.to_thread(rabbitmq.declare, f"{name}.x", f"{name}.q", ["#"])
    try:
        with TcpProxy(rabbitmq.PORT, tls=context) as proxy:
            settings = {
                "name": "tls",
                "type": "rabbitmq",
                "url": f"amqps://guest:guest@127.0.0.1:{proxy.port}/",
                "exchange": f"{name}.x",
                "timeout": "3s",
            }
            sink = sink_of({**settings, "tls": {"ca_file": str(pki.ca)}})
            events = make_events(1, 10, STUDIES)
            try:
                await sink.open()
                assert await sink.send(events) == [DELIVERED] * 10
            finally:
                await sink.close()
            held = await asyncio.to_thread(rabbitmq.read_queue, f"{name}.q")
            assert [message.message_id for message in held] == [event.id for event in events]

            await refuses_the_untrusted_server(settings)
    finally:
        await asyncio.to_thread(rabbitmq.delete, [f"{name}.x"], [f"{name}.q"])
