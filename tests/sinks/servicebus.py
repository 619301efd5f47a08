"""The Service Bus sink's contract harness: the project's AMQP 1.0 peer
(`tests.peers.amqp_peer`), which speaks Service Bus to the SDK.

A queue per test, read back through the peer's control channel (message id, session id and
body as stored). Down is an outage of the peer (connections dropped, the port closed) until
`bring_back`. The peer refuses our credentials by answering the SAS token's put-token with
401, and the destination is gone when it knows no such entity; a refused event is one
larger than the entity's message size limit (256 KB).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from bridge.core.event import Event
from tests.peers.amqp_peer import KEY, AmqpPeer
from tests.sinks.harness import ROUTE, Received, SinkHarness, one_event

_queues = itertools.count(1)


class Harness(SinkHarness):
    type = "servicebus"
    secrets = (KEY,)

    def start(self, workdir: Path) -> None:
        self.peer = AmqpPeer().start()
        self.queue = ""

    def stop(self) -> None:
        self.peer.close()

    def reset(self, workdir: Path) -> None:
        self.peer.restore()
        self.peer.clear()
        self.peer.set(cbs_status=202, entities=None)
        self.queue = f"contract-{next(_queues)}"

    def config(self) -> dict[str, Any]:
        return {
            "name": ROUTE,
            "type": "servicebus",
            "connection_string": self.peer.connection_string,
            "queue": self.queue,
            "send_timeout": "5s",
        }

    def received(self) -> list[Received]:
        return [
            Received(message["body"].encode(), id=message["message_id"], key=message["session_id"])
            for message in self.peer.messages(self.queue)
        ]

    def take_down(self) -> None:
        self.peer.outage(None)

    def bring_back(self) -> None:
        self.peer.restore()

    def refuse(self, sequence: int) -> Event:
        return one_event(sequence, pad=300_000)

    def refuse_credentials(self) -> None:
        self.peer.set(cbs_status=401)

    def remove_destination(self) -> None:
        self.peer.set(entities=[])
