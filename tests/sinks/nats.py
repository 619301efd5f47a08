"""The NATS sink's contract harness: a nats-server of the harness's own (the machine's
binary, JetStream on, a user with a password; `tests.peers.nats_server`), reached through a
TCP proxy (`tests.peers.tcp_proxy`).

A stream per test (`CONTRACT_<n>`, subjects `contract.<n>.>`, created by the sink), read back
with nats-py's ordered consumer; the transport id is the `Nats-Msg-Id` header. Down is the
proxy cut, back is it listening again. A refused event is one larger than the server's
max_payload (1 MB); refused credentials are the user's password changed (config reload).
"""

from __future__ import annotations

import itertools
import secrets
import time
from pathlib import Path
from typing import Any

from bridge.core.event import Event
from tests.peers.nats_server import NatsServer, read_stream, refuses
from tests.peers.tcp_proxy import THREAD, TcpProxy
from tests.sinks.harness import ROUTE, Received, SinkHarness, one_event

USER = "contract"
PASSWORD = f"contract-nats-{secrets.token_hex(8)}"
_streams = itertools.count(1)


class Harness(SinkHarness):
    type = "nats"
    secrets = (PASSWORD,)
    peer_threads = (THREAD, "nats-reader")
    deduplicates = "JetStream drops a Nats-Msg-Id it saw within the duplicate window"
    no_destination = (
        "the sink creates its stream when missing (at open, and again after a publish "
        "no stream answered): it cannot be gone"
    )

    def start(self, workdir: Path) -> None:
        self.server = NatsServer(workdir, user=USER, password=PASSWORD).start()
        self.proxy = TcpProxy(self.server.port).start()
        self.number = 0

    def stop(self) -> None:
        self.proxy.stop()
        self.server.stop()

    def reset(self, workdir: Path) -> None:
        self.proxy.restore()
        if self.server.password != PASSWORD:
            self.server.set_password(PASSWORD)
            deadline = time.monotonic() + 10
            while refuses(self.server.url, user=USER, password=PASSWORD):
                assert time.monotonic() < deadline, "the password was not restored"
        self.number = next(_streams)

    def config(self) -> dict[str, Any]:
        return {
            "name": ROUTE,
            "type": "nats",
            "servers": f"nats://127.0.0.1:{self.proxy.port}",
            "subject": f"contract.{self.number}." + "{action}",
            "stream": f"CONTRACT_{self.number}",
            "user": USER,
            "password": PASSWORD,
            "timeout": "2s",
        }

    def received(self) -> list[Received]:
        return [
            Received(data, id=headers.get("Nats-Msg-Id"))
            for _, headers, data in read_stream(
                self.server.url,
                f"CONTRACT_{self.number}",
                user=USER,
                password=self.server.password,
            )
        ]

    def take_down(self) -> None:
        self.proxy.cut()

    def bring_back(self) -> None:
        self.proxy.restore()

    def refuse(self, sequence: int) -> Event:
        return one_event(sequence, pad=1_100_000)

    def refuse_credentials(self) -> None:
        self.server.set_password("another-password")
        deadline = time.monotonic() + 10
        while not refuses(self.server.url, user=USER, password=PASSWORD):
            assert time.monotonic() < deadline, "the reload did not refuse the old password"
