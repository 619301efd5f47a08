"""Simulator → bridge → the machine's Redis (127.0.0.1:6379), read back with redis-py."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis

from tests.integration.broker_runs import Message, outage_run
from tests.peers.tcp_proxy import TcpProxy

PORT = 6379


@pytest.fixture
def server() -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=PORT)
    yield client
    client.close()


@pytest.fixture
def prefix(server: redis.Redis) -> Iterator[str]:
    """Stream keys of this test's own, deleted afterwards."""
    name = f"it.{os.getpid()}.{secrets.token_hex(4)}"
    yield name
    keys = list(server.scan_iter(match=f"{name}.*"))
    if keys:
        server.delete(*keys)


@pytest.mark.slow
def test_a_ten_second_cut_loses_nothing_and_the_cursor_waits(simulator, server, prefix, tmp_path):
    def read() -> list[Message]:
        messages = []
        for key in sorted(server.scan_iter(match=f"{prefix}.*")):
            messages += [
                Message(key.decode(), fields[b"event"], fields[b"id"].decode())
                for _, fields in server.xrange(key)
            ]
        return messages

    with TcpProxy(PORT) as proxy:
        sink = {
            "name": "events",
            "type": "redis",
            "url": f"redis://127.0.0.1:{proxy.port}/0",
            "stream": prefix + ".{action}",
            "maxlen": 1_000_000,
            "timeout": "2s",
        }
        figures = outage_run(simulator, tmp_path, proxy, sink, read)
    print(f"redis outage figures: {figures}")
    assert {key.decode() for key in server.scan_iter(match=f"{prefix}.*")} >= {f"{prefix}.create"}
