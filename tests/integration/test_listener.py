"""The metrics listener against hostile clients over real sockets: an oversized header
block, half-requests left idle, more connections than it serves. Memory stays bounded and
`/healthz` answers again once they are gone."""

from __future__ import annotations

import asyncio
import contextlib
import time
import tracemalloc
from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.runtime import listener as listener_module
from bridge.runtime.listener import Listener
from bridge.runtime.telemetry import Telemetry

REQUEST_START = b"GET /healthz HTTP/1.1\r\nhost: bridge\r\n"


@pytest.fixture
async def listening(monkeypatch) -> AsyncIterator[str]:
    """A listener (no pipeline: /healthz and /metrics only) with a short request timeout;
    yields its base URL."""
    monkeypatch.setattr(listener_module, "REQUEST_TIMEOUT", 0.5, raising=False)
    server = Listener(Telemetry().exposition, dict, "127.0.0.1", 0)
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert not serving.done() and time.monotonic() < deadline, "the listener did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        await asyncio.wait_for(serving, 10)


async def healthz(base: str, timeout: float = 10.0) -> int:
    """The status of `/healthz`, asked until the listener takes the connection."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=timeout) as client:
        while True:
            try:
                return (await client.get(f"{base}/healthz")).status_code
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


async def connect(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it kept it open."""
    received = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return received


async def test_serves_health_and_metrics_with_keep_alive(listening):
    async with httpx.AsyncClient(base_url=listening, timeout=10) as client:
        for _ in range(3):  # one connection, several requests
            assert (await client.get("/healthz")).json() == {"status": "alive"}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "process_cpu_seconds_total" in metrics.text
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        head = await client.head("/healthz")
        assert head.status_code == 200 and head.content == b""
        missing = await client.get("/nowhere")
        assert missing.status_code == 404 and "/metrics" in missing.text
        assert missing.reason_phrase == "Not Found"
        assert (await client.post("/healthz", content=b"x")).status_code == 405


async def test_a_200_mb_header_block_is_refused_early_with_bounded_memory(listening):
    reader, writer = await connect(listening)
    line = b"x-pad: " + b"a" * 1000 + b"\r\n"
    chunk = line * 1000  # about 1 MB of header lines
    sent = 0
    tracemalloc.start()
    try:
        writer.write(REQUEST_START)
        with contextlib.suppress(ConnectionError):
            while sent < 200 * 2**20:
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 10)
                sent += len(chunk)
        answer = await closed_by_server(reader, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        writer.close()
    # Refused once the header block passes the limit: what the kernel buffered at most.
    assert sent < 32 * 2**20, f"the listener took {sent:,} bytes of headers"
    assert answer is not None, "the listener kept the connection open"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert peak < 16 * 2**20, f"{peak:,} bytes held at the peak"
    assert await healthz(listening) == 200
    print(f"header flood: {sent:,} bytes taken, answer {answer[:12]!r}, heap peak {peak:,}")


async def test_an_idle_half_request_is_cut_after_the_request_timeout(listening):
    reader, writer = await connect(listening)
    started = time.monotonic()
    try:
        writer.write(REQUEST_START)  # the blank line that ends the headers never comes
        await writer.drain()
        assert await closed_by_server(reader, 10) is not None, "still open after 10 s"
    finally:
        writer.close()
    assert time.monotonic() - started >= 0.4  # cut by the timeout, not at once

    # An idle keep-alive connection after an answer is cut the same way.
    reader, writer = await connect(listening)
    try:
        writer.write(REQUEST_START + b"\r\n")
        answer = await closed_by_server(reader, 10)
    finally:
        writer.close()
    assert answer is not None and answer.startswith(b"HTTP/1.1 200 ")


async def test_connections_beyond_the_cap_are_refused_without_growing_memory(
    listening, monkeypatch
):
    monkeypatch.setattr(listener_module, "REQUEST_TIMEOUT", 60.0, raising=False)
    extra = 100
    cap = getattr(listener_module, "MAX_CONNECTIONS", 64)
    tracemalloc.start()
    opened = []
    try:
        for _ in range(cap + extra):
            reader, writer = await connect(listening)
            writer.write(REQUEST_START + b"x-pad: " + b"a" * 8000 + b"\r\n")  # no end
            opened.append((reader, writer))
        outcomes = await asyncio.gather(*(closed_by_server(r, 0.3) for r, _ in opened))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        for _, writer in opened:
            writer.close()
    refused = sum(outcome is not None for outcome in outcomes)
    assert refused == extra, f"{refused} of {cap + extra} connections refused"
    assert peak < 16 * 2**20, f"{peak:,} bytes held at the peak"
    assert await healthz(listening) == 200
