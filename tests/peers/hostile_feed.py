"""A v1 change feed on loopback that misbehaves on request, as a broken proxy or a hostile
server would (an asyncio HTTP/1.1 server in a background thread, its own event loop).

    with HostileFeed(entries=500) as feed:
        feed.script("html", "object", "truncate")   # the next page requests meet these
        feed.script("slowloris", path="latest")      # the next latest request meets this
        feed.maintenance(30.0)                       # every request answers HTML meanwhile
        ...                                          # GET feed.url + /v1/changefeed...
        feed.requests                                # (time, path, query) of every request

Faults: `html` (a maintenance page, text/html, status 200), `json-html` (the same labelled
application/json), `object` (a JSON object), `truncate` (a body cut short with a matching
Content-Length), `slowloris` (headers, then one byte a second), `gzipbomb` (a gzip body
inflating to `bomb_bytes`), `junk` (`junk_bytes` of junk, streamed), `outside` (a row
beyond the window appended), `dup` (the first row twice), `500`, `corrupt` (the page with
its first entry's studyInstanceUid removed).

Entries are served compact, `sequence` first, as the DICOM server writes them; with
`includeMetadata=true` each carries DICOM JSON of `metadata_bytes` (or `metadata_sizes`
for chosen sequences). `broken` sequences are always served without studyInstanceUid
(poison entries); `latest_sequence` overrides the sequence `latest` answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import zlib
from collections import deque
from functools import cache
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import orjson

MAINTENANCE = b"<html><body><h1>503 Service Temporarily Unavailable</h1>maintenance</body></html>"
FAULTS = frozenset(
    {"html", "json-html", "object", "truncate", "slowloris", "gzipbomb", "junk", "outside",
     "dup", "500", "corrupt"}
)  # fmt: skip


def entry(sequence: int, metadata_bytes: int | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "sequence": sequence,
        "partitionName": "Microsoft.Default",
        "studyInstanceUid": f"1.2.{sequence // 10}",
        "seriesInstanceUid": f"1.2.{sequence // 10}.1",
        "sopInstanceUid": f"1.2.{sequence // 10}.1.{sequence}",
        "action": "Create",
        "timestamp": f"2024-05-10T16:{sequence // 600 % 60:02}:{sequence // 10 % 60:02}."
        f"{sequence % 10}+00:00",
        "state": "Current",
    }
    if metadata_bytes is not None:
        value["metadata"] = {"00291010": {"vr": "UT", "Value": ["x" * metadata_bytes]}}
    return value


@cache
def gzip_bomb(size: int) -> bytes:
    """A gzip body of about size/1000 bytes that inflates to `size` zero bytes."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, compressor.flush()])


class HostileFeed:
    def __init__(
        self,
        entries: int = 100,
        *,
        metadata_bytes: int = 100,
        bomb_bytes: int = 1 << 30,
        junk_bytes: int = 300 << 20,
    ) -> None:
        self.sequences = list(range(1, entries + 1))
        self.metadata_bytes = metadata_bytes
        self.metadata_sizes: dict[int, int] = {}
        self.broken: set[int] = set()
        self.latest_sequence: int | None = None
        self.bomb_bytes = bomb_bytes
        self.junk_bytes = junk_bytes
        self.requests: list[tuple[float, str, dict[str, str]]] = []
        self._faults: dict[str, deque[str]] = {"page": deque(), "latest": deque()}
        self._maintenance_until = 0.0
        self._maintenance_seconds = 0.0  # armed: the window opens at the next request
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.url = ""

    # -- control (from the test's thread) -------------------------------------------------

    def script(self, *faults: str, path: str = "page") -> None:
        unknown = set(faults) - FAULTS
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        self._faults[path].extend(faults)

    def maintenance(self, seconds: float) -> None:
        """Serve a maintenance page for `seconds` from the next request on (not from now:
        the client may take a while to start, a helper process for one)."""
        self._maintenance_seconds = seconds

    def pending_faults(self) -> int:
        return sum(len(faults) for faults in self._faults.values())

    def page_requests(self) -> list[dict[str, str]]:
        return [query for _, path, query in self.requests if path.endswith("/changefeed")]

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        )
        self._server = started.result(10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        async def stop() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- serving ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Cancelled only when the peer stops: ending quietly keeps asyncio from logging it.
        quiet = (ConnectionError, asyncio.IncompleteReadError, OSError, asyncio.CancelledError)
        with contextlib.suppress(*quiet):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                parts = urlsplit(target)
                query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
                self.requests.append((time.monotonic(), parts.path, query))
                if not await self._answer(writer, parts.path, query):
                    break
        writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, path: str, query: dict) -> bool:
        """Answer one request; False when the connection must be closed."""
        if self._maintenance_seconds:
            self._maintenance_until = time.monotonic() + self._maintenance_seconds
            self._maintenance_seconds = 0.0
        if time.monotonic() < self._maintenance_until:
            return await _send(writer, 200, MAINTENANCE, "text/html")
        if path == "/v1/changefeed/latest":
            fault = self._next_fault("latest")
            latest = self.latest_sequence or (self.sequences[-1] if self.sequences else None)
            if fault is None and latest is None:
                return await _send(writer, 204, b"")
            body = orjson.dumps(self._entry(latest or 1, False))
            return await self._faulty(writer, fault, body, [])
        if path != "/v1/changefeed":
            return await _send(writer, 404, b"not found", "text/plain")
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 10))
        metadata = query.get("includeMetadata", "true") == "true"
        rows = self._rows(offset, limit, metadata)
        fault = self._next_fault("page")
        return await self._faulty(writer, fault, orjson.dumps(rows), rows, offset, limit, metadata)

    async def _faulty(
        self, writer: asyncio.StreamWriter, fault: str | None, body: bytes, rows: list,
        offset: int = 0, limit: int = 0, metadata: bool = False,
    ) -> bool:  # fmt: skip
        if fault is None:
            return await _send(writer, 200, body)
        if fault == "html":
            return await _send(writer, 200, MAINTENANCE, "text/html")
        if fault == "json-html":
            return await _send(writer, 200, MAINTENANCE)
        if fault == "object":
            return await _send(writer, 200, b'{"message":"down for maintenance"}')
        if fault == "500":
            return await _send(writer, 500, b"internal error", "text/plain")
        if fault == "truncate":
            return await _send(writer, 200, body[: len(body) // 2])
        if fault == "outside":
            beyond = self._entry(offset + limit + 1, metadata)
            return await _send(writer, 200, orjson.dumps([*rows, beyond]))
        if fault == "dup":
            return await _send(writer, 200, orjson.dumps(rows[:1] + rows))
        if fault == "corrupt":
            changed = [dict(row) for row in rows]
            if changed:
                del changed[0]["studyInstanceUid"]
            return await _send(writer, 200, orjson.dumps(changed))
        if fault == "gzipbomb":
            bomb = gzip_bomb(self.bomb_bytes)
            return await _send(writer, 200, bomb, extra=b"Content-Encoding: gzip\r\n")
        if fault == "junk":
            await _head(writer, 200, self.junk_bytes)
            block = b"x" * (1 << 20)
            for start in range(0, self.junk_bytes, len(block)):
                writer.write(block[: self.junk_bytes - start])
                await writer.drain()
            return True
        # slowloris: the whole body announced, then one byte a second until the client leaves
        await _head(writer, 200, len(body))
        for index in range(len(body)):
            writer.write(body[index : index + 1])
            await writer.drain()
            await asyncio.sleep(1.0)
        return True

    def _next_fault(self, path: str) -> str | None:
        faults = self._faults[path]
        return faults.popleft() if faults else None

    def _rows(self, offset: int, limit: int, metadata: bool) -> list[dict[str, Any]]:
        return [self._entry(s, metadata) for s in self.sequences if offset < s <= offset + limit]

    def _entry(self, sequence: int, metadata: bool) -> dict[str, Any]:
        size = self.metadata_sizes.get(sequence, self.metadata_bytes) if metadata else None
        value = entry(sequence, size)
        if sequence in self.broken:
            del value["studyInstanceUid"]
        return value


async def _head(writer: asyncio.StreamWriter, status: int, length: int, content_type: str =
                "application/json; charset=utf-8", extra: bytes = b"") -> None:  # fmt: skip
    writer.write(
        b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
        % (status, content_type.encode(), length, extra)
    )
    await writer.drain()


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "application/json; charset=utf-8",
    extra: bytes = b"",
) -> bool:
    await _head(writer, status, len(body), content_type, extra)
    writer.write(body)
    await writer.drain()
    return True
