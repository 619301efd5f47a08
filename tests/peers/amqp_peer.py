"""The project's AMQP 1.0 peer (a local stand-in for Azure Service Bus) as a subprocess.

    with AmqpPeer() as peer:
        peer.connection_string                    # for azure-servicebus, any entity name
        peer.set(duplicate_detection=True, max_message_size=8192, server_busy=False)
        peer.outage(10)                           # drop connections, listen again in 10 s
        peer.messages("queue")                    # stored messages, oldest first (dicts)
        peer.arrivals("queue")                    # (message id, enqueue time) pairs
        peer.stats()                              # counters, queue depths, settings

The child (`python -m tests.peers.amqp_peer`) prints one line with its address, then answers
each JSON command line on stdin with one JSON line on stdout; closing stdin stops it, so a
crashed test run leaves nothing behind. Wire behaviour: `amqp_broker`; semantics:
`amqp_store`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Self

KEY = "peer-test-key"
ROOT = Path(__file__).resolve().parents[2]


class PeerError(Exception):
    pass


class AmqpPeer:
    def __init__(self, startup_timeout: float = 30.0, reply_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.reply_timeout = reply_timeout
        self.address = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._buffer = b""
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
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives until close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.peers.amqp_peer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
        )
        try:
            self.address = self._read(time.monotonic() + self.startup_timeout)["listening"]
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close stdin (the peer's stop signal), wait, kill if it lingers. Idempotent."""
        if self.process is not None:
            if self.process.stdin is not None and not self.process.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- control --------------------------------------------------------------------------

    def request(self, op: str, **arguments: Any) -> Any:
        if self.process is None or self.process.stdin is None:
            raise PeerError("the peer is not running")
        with self._lock:
            self.process.stdin.write(json.dumps({"op": op, **arguments}).encode() + b"\n")
            self.process.stdin.flush()
            answer = self._read(time.monotonic() + self.reply_timeout)
        if "error" in answer:
            raise PeerError(answer["error"])
        return answer

    def set(self, **settings: Any) -> dict[str, Any]:
        """Change settings: max_message_size, duplicate_detection, duplicate_window (s),
        server_busy, reject_condition, cbs_status, entities (list or None)."""
        return self.request("set", **settings)

    def stats(self) -> dict[str, Any]:
        return self.request("stats")

    def counters(self) -> dict[str, int]:
        return self.stats()["counters"]

    def messages(self, entity: str) -> list[dict[str, Any]]:
        return self.request("messages", entity=entity)[entity]

    def arrivals(self, entity: str) -> list[tuple[str | None, float]]:
        """(message id, enqueue time as `time.monotonic()` sees it) per stored message."""
        return [tuple(pair) for pair in self.request("arrivals", entity=entity)["arrivals"]]

    def clear(self) -> dict[str, Any]:
        return self.request("clear")

    def outage(self, seconds: float) -> None:
        """Drop every connection and stop listening; back on the same port after `seconds`."""
        self.request("outage", seconds=seconds)

    def stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _read(self, deadline: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PeerError(f"no answer from the AMQP peer: {self.stderr()}")
                if selector.select(remaining):
                    chunk = os.read(self.process.stdout.fileno(), 1 << 20)
                    if not chunk:
                        raise PeerError(f"the AMQP peer exited: {self.stderr()}")
                    self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)


def main(argv: list[str] | None = None) -> None:
    from tests.peers.amqp_broker import serve

    parser = argparse.ArgumentParser(description="AMQP 1.0 peer for Service Bus tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args(argv)
    serve(options.host, options.port)


if __name__ == "__main__":
    main()
