"""A receiver answering with a huge body: the sink reads a small excerpt at most, within the
request's deadline, and closes the connection instead of draining it."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bridge.core.sink import DELIVERED, Permanent, Transient
from sinks import create_sink
from sinks.webhook.config import Config
from tests.integration.webhook.helpers import SECRET, feed_events

BODY_LIMIT = 256 * 2**20  # what the receiver sends at most, then it stalls
CHUNK = b"x" * 2**20


@dataclass
class Flood:
    """A receiver answering every request with `status` and an endless body (up to
    BODY_LIMIT, then silence); counts the body bytes the bridge accepted."""

    status: bytes
    url: str = ""
    trickle: bool = False  # one byte every 50 ms instead
    sent: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    await reader.readexactly(int(value))
            writer.write(b"HTTP/1.1 " + self.status + b"\r\ncontent-length: 1073741824\r\n\r\n")
            while self.sent < BODY_LIMIT:
                if self.trickle:
                    await asyncio.sleep(0.05)
                writer.write(b"x" if self.trickle else CHUNK)
                await writer.drain()
                self.sent += 1 if self.trickle else len(CHUNK)
            await reader.read()  # stalls until the client closes the connection
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: what it did not read stays unsent
        finally:
            writer.close()


@pytest.fixture
async def flood() -> AsyncIterator[Flood]:
    peer = Flood(b"200 OK")
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    peer.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks"
    async with server:
        yield peer
        server.close()


def webhook(url: str, timeout: str = "20s"):
    return create_sink(
        Config(name="hooks", type="webhook", url=url, secret=SECRET, timeout=timeout)
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [(b"200 OK", DELIVERED), (b"400 Bad Request", Permanent), (b"503 Busy", Transient)],
)
async def test_a_huge_answer_is_read_up_to_a_small_cap_and_the_connection_closed(
    flood, status, expected
):
    flood.status = status
    sink = webhook(flood.url)
    await sink.open()
    tracemalloc.start()
    started = time.monotonic()
    try:
        outcomes = await sink.send(feed_events(3, studies=1))  # one lane: one connection
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await sink.close()
    elapsed = time.monotonic() - started

    if expected is DELIVERED:
        assert outcomes == [DELIVERED] * 3
    else:  # the first fails with an excerpt; the lane holds the study's later events back
        assert isinstance(outcomes[0], expected), outcomes[0]
        assert "xxxx" in outcomes[0].reason and len(outcomes[0].reason) < 400
    assert elapsed < 15, "the sink waited for the body until its deadline"
    # Socket buffers hold a few MB at most; the rest was never sent, let alone held.
    assert flood.sent < 32 * 2**20, f"{flood.sent:,} bytes of the answer were read"
    assert peak < 16 * 2**20, f"{peak:,} bytes held at the peak"
    print(f"{status.decode()}: {flood.sent:,} bytes sent, heap peak {peak:,} in {elapsed:.2f}s")


async def test_check_reads_no_more_of_an_endless_answer(flood):
    flood.status = b"405 Method Not Allowed"
    assert "reachable (OPTIONS answered 405" in await webhook(flood.url).check()
    assert flood.sent < 32 * 2**20


async def test_a_body_trickling_in_is_cut_at_the_request_deadline(flood):
    flood.status, flood.trickle = b"200 OK", True
    sink = webhook(flood.url, timeout="300ms")
    started = time.monotonic()
    try:
        [outcome] = await sink.send(feed_events(1))
    finally:
        await sink.close()
    assert isinstance(outcome, Transient)
    assert "no complete answer within 0.3s" in outcome.reason
    assert time.monotonic() - started < 10
