"""The NATS sink's other credentials against a nats-server of the test's own: a token and an
NKey seed file deliver; a wrong token stops the sink in one line without the secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import nkeys
import pytest

from bridge.core.sink import DELIVERED, SinkFatalError
from sinks import config_models, create_sink
from tests.peers.nats_server import NatsServer, read_stream
from tests.sinks.harness import make_events

STUDIES = ("1.2.840.1", "1.2.840.2")


def sink_of(server: NatsServer, **credentials):
    settings = {
        "name": "auth",
        "type": "nats",
        "servers": server.url,
        "subject": "auth.{action}",
        "stream": "AUTH",
        "timeout": "3s",
        **credentials,
    }
    return create_sink(config_models()["nats"].model_validate(settings))


async def deliver(sink) -> list:
    events = make_events(1, 6, STUDIES)
    try:
        await sink.open()
        assert await sink.send(events) == [DELIVERED] * 6
    finally:
        await sink.close()
    return events


async def test_a_token_delivers_and_a_wrong_one_stops_the_sink(tmp_path: Path):
    token = f"token-{secrets.token_hex(8)}"
    server = NatsServer(tmp_path, authorization=f"token: {token!r}").start()
    try:
        events = await deliver(sink_of(server, token=token))
        held = read_stream(server.url, "AUTH", token=token)
        assert [headers["Nats-Msg-Id"] for _, headers, _ in held] == [e.id for e in events]

        wrong = f"wrong-{secrets.token_hex(8)}"
        refused = sink_of(server, token=wrong)
        with pytest.raises(SinkFatalError) as failure:
            await refused.open()
        await refused.close()
        assert "\n" not in str(failure.value) and wrong not in str(failure.value)
    finally:
        server.stop()


async def test_an_nkey_seed_file_delivers(tmp_path: Path):
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    server = NatsServer(tmp_path, authorization=f"users: [{{nkey: {public!r}}}]").start()
    try:
        events = await deliver(sink_of(server, nkey_seed_file=str(seed_file)))
        held = read_stream(server.url, "AUTH", nkeys_seed=str(seed_file))
        assert len(held) == len(events)
    finally:
        server.stop()
