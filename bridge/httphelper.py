"""The child side of `bridge.feed._http.HelperFetcher`: performs the feed's HTTP requests
for the bridge process (`python -m bridge.httphelper MAX_CONNECTIONS TIMEOUT`).

A module of its own, outside `bridge.feed`, so the helper starts without importing the
bridge. Frames on stdin/stdout: a 4-byte big-endian length, then that many bytes. A request
is a JSON frame `{"id", "url", "headers"}`; an answer is a JSON frame `{"id", "status",
"headers"}` (names in lower case) or `{"id", "error", "message"}` (an httpx transport
exception's class name), then a body frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys

import httpx
import orjson

LENGTH = struct.Struct(">I")
#: Frames larger than this are refused: a feed page with metadata is a few MB at most.
MAX_FRAME = 512 * 1024 * 1024
#: httpcore checks every connection of a pool for expiry (a socket poll and a getpeername
#: each) before and after every request: with pools of this many, that cost stays small
#: (a third less CPU per page than one pool of 18).
POOL_SIZE = 2
#: Headers describing the body as it came over the network, no longer true once decoded.
_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def read_frame(stream: asyncio.StreamReader) -> bytes:
    (length,) = LENGTH.unpack(await stream.readexactly(LENGTH.size))
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes")
    return await stream.readexactly(length)


async def _serve(max_connections: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_FRAME)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(sys.stdout.fileno(), "wb")
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    pools = -(-max_connections // POOL_SIZE)
    per_pool = -(-max_connections // pools)
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(timeout=timeout, limits=limits))
            for _ in range(pools)
        ]
        busy = dict.fromkeys(clients, 0)  # requests in flight per pool
        tasks: dict[asyncio.Task, httpx.AsyncClient] = {}

        def finished(task: asyncio.Task) -> None:
            busy[tasks.pop(task)] -= 1

        while True:
            try:
                frame = await read_frame(reader)
            except asyncio.IncompleteReadError:
                break  # the bridge closed our stdin: its transport is closing
            client = min(clients, key=busy.__getitem__)  # a slow request holds up no other
            busy[client] += 1
            task = asyncio.create_task(_perform(client, orjson.loads(frame), writer))
            tasks[task] = client
            task.add_done_callback(finished)
        for task in list(tasks):
            task.cancel()


async def _perform(client: httpx.AsyncClient, ask: dict, writer: asyncio.StreamWriter) -> None:
    body = b""
    try:
        response = await client.get(ask["url"], headers=ask["headers"])
        body = response.content  # decoded: the bridge must not decode it again
        headers = {
            name.lower(): value
            for name, value in response.headers.items()
            if name.lower() not in _BODY_FRAMING
        }
        head = {"id": ask["id"], "status": response.status_code, "headers": headers}
    except httpx.TransportError as exc:
        head = {"id": ask["id"], "error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # never leave the bridge waiting for an answer
        head = {
            "id": ask["id"],
            "error": "TransportError",
            "message": f"{type(exc).__name__}: {exc}",
        }
    header = orjson.dumps(head)
    # No drain(): the bridge bounds its requests in flight, which bounds the answers waiting
    # in the pipe. Under load the shared buffer rarely falls to its low-water mark, so a
    # drain() per answer kept every answer's body alive until the end of the catch-up.
    writer.write(b"".join((LENGTH.pack(len(header)), header, LENGTH.pack(len(body)), body)))


def main() -> None:
    max_connections, timeout = int(sys.argv[1]), float(sys.argv[2])
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(max_connections, timeout))
    else:
        uvloop.run(_serve(max_connections, timeout))


if __name__ == "__main__":
    main()
