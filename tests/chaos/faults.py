"""Taking one sink's peer away for a while: Kafka brokers down, the AMQP peer not
listening, the webhook receiver answering 503, the file sink's file system full or its
files immutable. Each is a context manager: the fault holds inside the `with` block."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tests.chaos.storage import Tmpfs, set_immutable
from tests.e2e.helpers import wait_for

if TYPE_CHECKING:
    from tests.chaos.harness import Harness

#: Outage kinds, and the sink each one takes away.
OUTAGES = {
    "kafka": "kafka",
    "servicebus": "servicebus",
    "webhook": "webhook",
    "file-full": "file",
    "file-immutable": "file",
}


@contextlib.contextmanager
def outage(
    harness: Harness, kind: str, seconds: float, files: Tmpfs | None = None
) -> Iterator[None]:
    """The fault `kind` on `harness`'s peers while the block runs, which should last
    `seconds` (the AMQP peer comes back by itself then; leaving the block waits for it).
    The file faults need the file sink's directory to be `files`, a tmpfs."""
    if kind == "kafka":
        harness.peers.kafka.set_down(-1)
        try:
            yield
        finally:
            harness.peers.kafka.set_up(-1)
    elif kind == "servicebus":
        with _amqp_outage(harness, seconds):
            yield
    elif kind == "webhook":
        assert harness.receiver is not None
        harness.receiver.set_faults(rate_503=1.0)
        try:
            yield
        finally:
            harness.receiver.set_faults(rate_503=0.0)
    elif kind == "file-full":
        assert files is not None and files.path == harness.files
        files.fill()
        try:
            yield
        finally:
            files.unfill()
    elif kind == "file-immutable":
        assert files is not None and files.path == harness.files
        targets = [harness.files, harness.files / "events.jsonl"]
        set_immutable(targets, True)
        try:
            yield
        finally:
            set_immutable(targets, False)
    else:
        raise ValueError(f"unknown outage {kind!r}")


@contextlib.contextmanager
def _amqp_outage(harness: Harness, seconds: float) -> Iterator[None]:
    """The peer drops every connection and stops listening for `seconds`."""
    peer = harness.peers.amqp
    peer.outage(seconds)
    try:
        yield
    finally:
        wait_for(
            lambda: _listening(peer.port), seconds + 30, message="the AMQP peer listening again"
        )


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        time.sleep(0.05)
        return False
