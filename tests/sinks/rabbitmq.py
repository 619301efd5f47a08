"""The RabbitMQ sink's contract harness: the machine's RabbitMQ (127.0.0.1:5672), reached
through a TCP proxy (`tests.peers.tcp_proxy`), as a user of the harness's own (added with
`rabbitmqctl` at start, deleted at stop).

A durable topic exchange per test (declared by the harness: the sink accepts it) and a queue
bound to it for the routing keys `create` and `update` (the config's routing key is
`{action}`); read back without consuming (`tests.peers.rabbitmq`), the transport id being
`message_id`. Down is the proxy cut. A refused event is a Delete: no queue is bound for it,
so the broker returns it (mandatory). Refused credentials are the user's password changed;
the destination gone is the user's write permission revoked (ACCESS_REFUSED on publish).
"""

from __future__ import annotations

import itertools
import os
import secrets
from pathlib import Path
from typing import Any

from bridge.core.event import Event
from bridge.delivery.format import Formatter
from tests.factories import SOURCE, entry
from tests.peers import rabbitmq
from tests.peers.tcp_proxy import THREAD, TcpProxy
from tests.sinks.harness import ROUTE, Received, SinkHarness

PASSWORD = f"contract-rabbitmq-{secrets.token_hex(8)}"
_tests = itertools.count(1)


class Harness(SinkHarness):
    type = "rabbitmq"
    secrets = (PASSWORD,)
    peer_threads = (THREAD, rabbitmq.THREAD)

    def start(self, workdir: Path) -> None:
        self.root = f"contract.{os.getpid()}.{secrets.token_hex(3)}"
        self.user = self.root
        rabbitmq.rabbitmqctl("add_user", self.user, PASSWORD)
        self._permit(write=".*")
        self.password, self.write = PASSWORD, ".*"
        self.proxy = TcpProxy(rabbitmq.PORT).start()
        self.exchanges: list[str] = []
        self.queues: list[str] = []

    def stop(self) -> None:
        self.proxy.stop()
        rabbitmq.delete(self.exchanges, self.queues)
        rabbitmq.rabbitmqctl("delete_user", self.user)

    def reset(self, workdir: Path) -> None:
        self.proxy.restore()
        if self.password != PASSWORD:
            rabbitmq.rabbitmqctl("change_password", self.user, PASSWORD)
            self.password = PASSWORD
        if self.write != ".*":
            self._permit(write=".*")
        rabbitmq.delete(self.exchanges, self.queues)
        number = next(_tests)
        self.exchange, self.queue = f"{self.root}.x{number}", f"{self.root}.q{number}"
        self.exchanges, self.queues = [self.exchange], [self.queue]
        rabbitmq.declare(self.exchange, self.queue, ["create", "update"])

    def config(self) -> dict[str, Any]:
        return {
            "name": ROUTE,
            "type": "rabbitmq",
            "url": f"amqp://{self.user}@127.0.0.1:{self.proxy.port}/%2F",
            "password": PASSWORD,
            "exchange": self.exchange,
            "routing_key": "{action}",
            "timeout": "2s",
        }

    def received(self) -> list[Received]:
        return [Received(held.body, id=held.message_id) for held in rabbitmq.read_queue(self.queue)]

    def take_down(self) -> None:
        self.proxy.cut()

    def bring_back(self) -> None:
        self.proxy.restore()

    def refuse(self, sequence: int) -> Event:
        return Formatter(SOURCE).event(entry(sequence, action="Delete"))

    def refuse_credentials(self) -> None:
        self.password = "another-password"
        rabbitmq.rabbitmqctl("change_password", self.user, self.password)

    def remove_destination(self) -> None:
        self._permit(write="^$")

    def _permit(self, *, write: str) -> None:
        self.write = write
        rabbitmq.rabbitmqctl("set_permissions", "-p", "/", self.user, ".*", write, ".*")
