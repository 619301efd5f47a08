"""The project's AMQP 1.0 peer (a local stand-in for Azure Service Bus) as a subprocess.

    with AmqpPeer() as peer:
        peer.connection_string                    # for azure-servicebus, any entity name
        peer.set(duplicate_detection=True, max_message_size=8192, server_busy=False)
        peer.set_entity("q", partitioned=True, duplicate_detection=True)  # this entity only
        peer.outage(10)                           # drop connections, listen again in 10 s
        peer.outage(None); peer.restore()         # ...or until told to
        peer.messages("queue")                    # stored messages, oldest first (dicts)
        peer.arrivals("queue")                    # (message id, enqueue time) pairs
        peer.stats()                              # counters, queue depths, settings
        peer.put_tokens()                         # type and audience of each CBS put-token

The child (`python -m tests.peers.amqp_peer`) prints one line with its address, then answers
each JSON command line on stdin with one JSON line on stdout; closing stdin stops it, so a
crashed test run leaves nothing behind. Wire behaviour: `amqp_broker`; semantics:
`amqp_store`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any, Self

from bridge.simulator.child import LineChild

KEY = "peer-test-key"
ROOT = Path(__file__).resolve().parents[2]


class PeerError(Exception):
    pass


class AmqpPeer(LineChild):
    what = "AMQP peer"
    error = PeerError

    def __init__(self, startup_timeout: float = 30.0, reply_timeout: float = 30.0) -> None:
        super().__init__([sys.executable, "-m", "tests.peers.amqp_peer"], commands=True, cwd=ROOT)
        self.startup_timeout = startup_timeout
        self.reply_timeout = reply_timeout
        self.address = ""
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    @property
    def connection_string(self) -> str:
        return (
            f"Endpoint=sb://{self.address};SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={KEY};UseDevelopmentEmulator=true"
        )

    def start(self) -> Self:
        super().start()
        try:
            self.address = json.loads(self.read_line(self.startup_timeout))["listening"]
        except BaseException:
            self.close()
            raise
        return self

    # -- control --------------------------------------------------------------------------

    def request(self, op: str, **arguments: Any) -> Any:
        with self._lock:
            self.send_line(json.dumps({"op": op, **arguments}).encode())
            answer = json.loads(self.read_line(self.reply_timeout))
        if "error" in answer:
            raise PeerError(answer["error"])
        return answer

    def set(self, **settings: Any) -> dict[str, Any]:
        """Change settings: max_message_size, duplicate_detection, duplicate_window (s),
        server_busy, reject_condition, cbs_status, cbs_token (the Entra ID token put-token
        must carry), requires_session, partitioned (every entity, as in a Premium namespace
        created partitioned), entities (list or None)."""
        return self.request("set", **settings)

    def set_entity(self, entity: str, **settings: Any) -> dict[str, Any]:
        """Settings of one entity, over those of `set`: max_message_size,
        duplicate_detection, duplicate_window, requires_session, partitioned (with duplicate
        detection, batches of distinct messages are refused, as Service Bus does)."""
        return self.request("entity", entity=entity, **settings)

    def stats(self) -> dict[str, Any]:
        return self.request("stats")

    def counters(self) -> dict[str, int]:
        return self.stats()["counters"]

    def put_tokens(self) -> list[dict[str, str]]:
        """Type and audience of every CBS put-token received, oldest first."""
        return self.stats()["put_tokens"]

    def messages(self, entity: str) -> list[dict[str, Any]]:
        return self.request("messages", entity=entity)[entity]

    def arrivals(self, entity: str) -> list[tuple[str | None, float]]:
        """(message id, enqueue time as `time.monotonic()` sees it) per stored message."""
        return [tuple(pair) for pair in self.request("arrivals", entity=entity)["arrivals"]]

    def clear(self) -> dict[str, Any]:
        return self.request("clear")

    def outage(self, seconds: float | None) -> None:
        """Drop every connection and stop listening; back on the same port after `seconds`
        (None: at `restore()`)."""
        self.request("outage", seconds=seconds)

    def restore(self) -> None:
        """End an outage now: listening again on the same port when this returns."""
        self.request("restore")


def main(argv: list[str] | None = None) -> None:
    from tests.peers.amqp_broker import serve

    parser = argparse.ArgumentParser(description="AMQP 1.0 peer for Service Bus tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args(argv)
    serve(options.host, options.port)


if __name__ == "__main__":
    main()
