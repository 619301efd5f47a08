"""The webhook sink's contract harness: the project's webhook receiver
(`tests.peers.webhook_receiver`), verifying signatures and a bearer token.

One receiver per module, its requests forgotten between tests. Received events are the
accepted requests' bodies, with the `webhook-id` header turned back into the event id. Down
is the receiver stopped (connections refused), back is it started again on the same port.
The receiver refuses an event for good with 422, our credentials with 401 (it expects
another bearer token from then on), and says the endpoint is gone with 410.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from bridge.core.event import Event
from tests.peers.webhook_receiver import THREAD, Faults, WebhookReceiver
from tests.sinks.harness import ROUTE, Received, SinkHarness, one_event

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's example
BEARER = "contract-webhook-token"


class Harness(SinkHarness):
    type = "webhook"
    secrets = (SECRET, BEARER)
    peer_threads = (THREAD,)

    def start(self, workdir: Path) -> None:
        self.receiver = WebhookReceiver([SECRET], bearer_token=BEARER).start()
        self.down = False

    def stop(self) -> None:
        self.receiver.stop()

    def reset(self, workdir: Path) -> None:
        self.bring_back()
        self.receiver.faults = Faults()
        self.receiver.bearer_token = BEARER
        self.receiver.reset()

    def config(self) -> dict[str, Any]:
        return {
            "name": ROUTE,
            "type": "webhook",
            "url": self.receiver.url,
            "secret": SECRET,
            "bearer_token": BEARER,
            "timeout": "5s",
        }

    def received(self) -> list[Received]:
        return [
            Received(request.body, id=unquote(request.headers["webhook-id"]))
            for request in self.receiver.accepted()
        ]

    def take_down(self) -> None:
        self.receiver.stop()
        self.down = True

    def bring_back(self) -> None:
        if self.down:
            self.receiver.start()
            self.down = False

    def refuse(self, sequence: int) -> Event:
        self.receiver.set_faults(reject={sequence: 422})
        return one_event(sequence)

    def refuse_credentials(self) -> None:
        self.receiver.bearer_token = "another-token"

    def remove_destination(self) -> None:
        self.receiver.set_faults(gone=True)
