"""The one GET the feed client makes (`fetch`), and the helper process that makes it for the
bridge (`python -m bridge.helper MAX_CONNECTIONS TIMEOUT MAX_BYTES`, the child side of
`bridge.feed._http.HelperFetcher`).

`fetch` bounds what an answer may cost, whatever the peer sends:
- time: `timeout` covers the whole request (connecting, headers and body). httpx's own
  timeout bounds each read, so one byte a second would keep a request open forever;
- memory: the body is decoded here, incrementally and with a bounded output, and refused
  (`TooLarge`) once over `max_bytes` decoded. httpx inflates each network chunk whole: a
  64 KB gzip chunk can become 66 MB. Only gzip and deflate are asked for and accepted; a
  body in another encoding cannot be decoded in bounded steps and is refused. The body of
  an error status is only shown as an excerpt: its first 64 KB are read, no more.

A module of its own, outside `bridge.feed`, so the helper starts without importing the
bridge. Frames on stdin/stdout: a 4-byte big-endian length, then that many bytes. A request
is a JSON frame `{"id", "url", "headers"}`; an answer is a JSON frame `{"id", "status",
"headers"}` (names in lower case) or `{"id", "error", "message"}` (the class name of an
httpx transport exception, `TooLarge` or `AnswerRefused`), then a body frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import sys
import zlib
from typing import Any

import httpx
import orjson

LENGTH = struct.Struct(">I")
#: Largest frame other than a body: a request, an answer's status and headers.
HEAD_BYTES = 1 << 20
#: What is read of the body of an error status: enough for the excerpt a message shows.
ERROR_BODY_BYTES = 64 * 1024
ACCEPT_ENCODING = "gzip, deflate"
#: httpcore checks every connection of a pool for expiry (a socket poll and a getpeername
#: each) before and after every request: with pools of this many, that cost stays small
#: (a third less CPU per page than one pool of 18).
POOL_SIZE = 2
#: Headers describing the body as it came over the network, no longer true once decoded.
_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class AnswerRefused(Exception):
    """An answer that cannot be read within bounds (transient: the next one may be fine)."""


class TooLarge(AnswerRefused):
    """The decoded body is larger than allowed."""


async def fetch(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], *, timeout: float,
    max_bytes: int,
) -> tuple[int, dict[str, str], bytearray]:  # fmt: skip
    """GET `url`: status, headers (lower-case names, without the body's framing) and the
    decoded body (a bytearray: the helper writes it as it is, no copy), all within
    `timeout` seconds. Raises httpx transport errors (a
    `ReadTimeout` past the deadline), `TooLarge` or `AnswerRefused`."""
    try:
        async with asyncio.timeout(timeout), client.stream("GET", url, headers=headers) as response:
            received = {
                name.lower(): value
                for name, value in response.headers.items()
                if name.lower() not in _BODY_FRAMING
            }
            if response.is_success:
                body = await _read_body(response, max_bytes)
            else:
                body = await _read_excerpt(response)
            return response.status_code, received, body
    except TimeoutError:
        raise httpx.ReadTimeout(f"no complete answer within {timeout:g}s") from None


async def _read_body(response: httpx.Response, limit: int) -> bytearray:
    encoding = response.headers.get("content-encoding", "")
    declared = response.headers.get("content-length", "")
    if not encoding and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"answer of {declared} bytes, over {limit} bytes")
    decoder = _Decoder(encoding)
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += decoder.decode(chunk, limit - len(body))
        if len(body) > limit:
            raise TooLarge(f"answer over {limit} bytes")
    return body


async def _read_excerpt(response: httpx.Response) -> bytearray:
    """The start of an error answer's body, for messages; b"" when it cannot be decoded."""
    body = bytearray()
    with contextlib.suppress(AnswerRefused):
        decoder = _Decoder(response.headers.get("content-encoding", ""))
        async for chunk in response.aiter_raw():
            body += decoder.decode(chunk, ERROR_BODY_BYTES - len(body))
            if len(body) >= ERROR_BODY_BYTES:
                break
    del body[ERROR_BODY_BYTES:]
    return body


class _Decoder:
    """Content decoding in steps whose output is bounded by the room left."""

    def __init__(self, encoding: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",")]
        codings = [c for c in codings if c not in ("", "identity")]
        if len(codings) > 1 or (codings and codings[0] not in _WBITS):
            raise AnswerRefused(f"content-encoding {encoding!r} is not supported")
        self._coding = codings[0] if codings else None
        self._inflate = zlib.decompressobj(_WBITS[self._coding]) if self._coding else None
        self._first = True

    def decode(self, data: bytes, room: int) -> bytes:
        """`data` decoded, at most `room + 1` bytes of it: more than `room` means over."""
        if self._inflate is None:
            return data
        first, self._first = self._first, False
        try:
            return self._inflate.decompress(data, room + 1)
        except zlib.error as exc:
            if first and self._coding == "deflate":  # raw deflate, without the zlib header
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data, room)
            raise AnswerRefused(f"{self._coding} body cannot be decoded: {exc}") from None


async def read_frame(stream: asyncio.StreamReader, limit: int) -> bytes:
    """One frame; ValueError if it is longer than `limit`."""
    (length,) = LENGTH.unpack(await stream.readexactly(LENGTH.size))
    if length > limit:
        raise ValueError(f"frame of {length} bytes, over {limit}")
    return await stream.readexactly(length)


async def _serve(max_connections: int, timeout: float, max_bytes: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
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
        tasks: dict[asyncio.Task[None], httpx.AsyncClient] = {}

        def finished(task: asyncio.Task[None]) -> None:
            busy[tasks.pop(task)] -= 1

        while True:
            try:
                frame = await read_frame(reader, HEAD_BYTES)
            except asyncio.IncompleteReadError:
                break  # the bridge closed our stdin: its transport is closing
            client = min(clients, key=busy.__getitem__)  # a slow request holds up no other
            busy[client] += 1
            ask = orjson.loads(frame)
            task = asyncio.create_task(_perform(client, ask, writer, timeout, max_bytes))
            tasks[task] = client
            task.add_done_callback(finished)
        for task in list(tasks):
            task.cancel()


async def _perform(
    client: httpx.AsyncClient, ask: dict[str, Any], writer: asyncio.StreamWriter, timeout: float,
    max_bytes: int,
) -> None:  # fmt: skip
    body = bytearray()
    try:
        status, headers, body = await fetch(
            client, ask["url"], ask["headers"], timeout=timeout, max_bytes=max_bytes
        )
        head = {"id": ask["id"], "status": status, "headers": headers}
    except (httpx.TransportError, AnswerRefused) as exc:
        head = {"id": ask["id"], "error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # never leave the bridge waiting for an answer
        head = {
            "id": ask["id"],
            "error": "TransportError",
            "message": f"{type(exc).__name__}: {exc}",
        }
    header = orjson.dumps(head)
    # No drain(): the bridge bounds its requests in flight, which bounds the answers waiting
    # in the pipe (each at most max_bytes). Under load the shared buffer rarely falls to its
    # low-water mark, so a drain() per answer kept every answer's body alive until the end
    # of the catch-up.
    writer.write(b"".join((LENGTH.pack(len(header)), header, LENGTH.pack(len(body)))))
    writer.write(body)


def main() -> None:
    # Ctrl-C at a terminal signals the whole process group: the bridge stops itself and then
    # closes our stdin, which is how this process ends (without a traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    max_connections, timeout, max_bytes = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    serve = _serve(max_connections, timeout, max_bytes)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve)
    else:
        uvloop.run(serve)
