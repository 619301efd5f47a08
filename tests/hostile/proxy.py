"""A hostile HTTP/1.1 proxy in front of the change-feed simulator, on loopback.

It forwards every request to the simulator, except that the faults it is given replace the
answers of some change-feed requests (`.../changefeed` pages and `.../changefeed/latest`):

    html             200, text/html: a maintenance page
    json-object      200, application/json: `{"error": ...}` where the feed serves an array
    truncated        the real answer cut in half, with the Content-Length of the cut body
    truncated-lying  the real answer's status and full Content-Length, half of it, then the
                     connection closes
    slow-loris       the real answer's status and headers at once, then its body one byte a
                     second, until the client gives up
    gzip-bomb        200, application/json, Content-Encoding: gzip: ~2 MB inflating to 2 GiB
    junk             200, application/json, chunked: 300 MiB of junk, never held in memory

A `Fault` is armed once `after` distinct page URLs (windows) were asked for, so that retries
do not move the schedule. A page fault then answers the first request for a window never
asked for before (its retries start their backoff afresh, not deep in another fault's), and
the next `times - 1` requests for that URL (the window retried); a `latest` fault answers the
next `times` latest requests. With `seconds`, it is a window instead: every request of its
target gets it for that long after its first answer (a maintenance window).

    with HostileProxy(simulator.url, [Fault("html", "any", after=10, seconds=6)]) as proxy:
        ...  # point the bridge at proxy.url
        proxy.served()  # {("html", "page"): 41, ...}

The proxy runs its own event loop in a thread. It answers GETs without bodies only (all the
feed client sends), keeps connections alive, and reads and writes in bounded pieces.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal, Self

import httpx

from tests.hostile import payloads

KINDS = (
    "html",
    "json-object",
    "truncated",
    "truncated-lying",
    "slow-loris",
    "gzip-bomb",
    "junk",
)
Target = Literal["page", "latest", "any"]
#: Faults that need the real answer first.
_FROM_UPSTREAM = frozenset({"truncated", "truncated-lying", "slow-loris"})
#: Headers that describe one hop's connection or framing, never forwarded.
_HOP = frozenset(
    {"connection", "keep-alive", "content-length", "transfer-encoding", "content-encoding",
     "host", "accept-encoding", "te", "upgrade", "proxy-connection"}
)  # fmt: skip
_JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Fault:
    kind: str
    target: Target = "page"
    after: int = 0  # distinct page URLs asked for before it is armed
    times: int = 1  # answers: its first request, then retries of the same URL
    seconds: float = 0.0  # > 0: a window over every request of its target instead

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; choose from {KINDS}")


@dataclass
class _Pending:
    fault: Fault
    url: str | None = None  # the URL it stuck to on its first answer
    left: int = 0
    until: float | None = None  # the end of a window once it opened, time.monotonic()
    done: bool = False

    def take(self, target: str, url: str, windows: int, fresh: bool) -> bool:
        """Whether this request gets the fault (and account for it): `windows` distinct page
        URLs were asked for before it; `fresh`: its URL is not one of them."""
        fault = self.fault
        if self.done or fault.target not in ("any", target) or windows < fault.after:
            return False
        if fault.seconds > 0:
            if self.until is None:
                self.until = time.monotonic() + fault.seconds
            elif time.monotonic() >= self.until:
                self.done = True
                return False
            return True
        if self.url is None:
            if target == "page" and not fresh:
                return False
            self.url, self.left = url, fault.times
        elif url != self.url:
            return False
        self.left -= 1
        self.done = self.left <= 0
        return True


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class HostileProxy:
    def __init__(
        self,
        upstream: str,
        faults: list[Fault] | tuple[Fault, ...] = (),
        *,
        drip_interval: float = 1.0,
        junk_bytes: int = payloads.JUNK_BYTES,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.drip_interval = drip_interval
        self.junk_bytes = junk_bytes
        self.url = ""
        self._pending = [_Pending(fault) for fault in faults]
        self._requests: Counter[str] = Counter()  # page, latest, other
        self._served: Counter[tuple[str, str]] = Counter()  # (kind, page|latest)
        self._windows: set[str] = set()  # page URLs asked for so far
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._connections: set[asyncio.Task] = set()

    # -- the API the tests use ------------------------------------------------------------

    def start(self) -> Self:
        if any(p.fault.kind == "gzip-bomb" for p in self._pending):
            payloads.gzip_bomb()  # made now, not while the first client waits for it
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hostile-proxy", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(30)
        return self

    def stop(self) -> None:
        """Close the listener and every connection (a slow-loris answer too). Idempotent."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(30)
        loop.close()

    def add(self, *faults: Fault) -> None:
        """More faults, after the ones given so far."""
        if any(fault.kind == "gzip-bomb" for fault in faults):
            payloads.gzip_bomb()
        with self._lock:
            self._pending += [_Pending(fault) for fault in faults]

    def served(self) -> dict[tuple[str, str], int]:
        """Faulty answers given so far, by (fault kind, `page` or `latest`)."""
        with self._lock:
            return dict(self._served)

    def requests(self) -> dict[str, int]:
        """Requests received so far: `page`, `latest` (feed requests) and `other`."""
        with self._lock:
            return dict(self._requests)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=60.0)
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        assert self._server is not None and self._client is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        await self._client.aclose()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                url, headers = _request(head)
                if not await self._answer(url, headers, writer):
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # the client went away, or sent a head larger than 64 KiB
        except asyncio.CancelledError:
            pass  # the proxy is stopping (asyncio's stream callback chokes on a cancelled task)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _answer(self, url: str, headers: dict[str, str], writer: asyncio.StreamWriter):
        """Answer one request; False when the connection must close."""
        kind = self._choose(_target(url), url)
        if kind is None:
            answer = await self._forward(url, headers)
            await _send(writer, answer.status, answer.headers, answer.body)
            return headers.get("connection", "").lower() != "close"
        if kind in _FROM_UPSTREAM:
            return await self._spoil(kind, await self._forward(url, headers), writer)
        json_type = [("Content-Type", _JSON)]
        match kind:
            case "html":
                html = [("Content-Type", "text/html; charset=utf-8")]
                await _send(writer, 200, html, payloads.MAINTENANCE_PAGE)
            case "json-object":
                await _send(writer, 200, json_type, payloads.JSON_OBJECT)
            case "gzip-bomb":
                gzip = [*json_type, ("Content-Encoding", "gzip")]
                await _send(writer, 200, gzip, payloads.gzip_bomb())
            case "junk":
                await self._junk(writer)
        return True

    async def _spoil(self, kind: str, answer: _Answer, writer: asyncio.StreamWriter) -> bool:
        """Send the real answer spoilt; False when the connection must close."""
        half = answer.body[: len(answer.body) // 2]
        if kind == "truncated":
            await _send(writer, answer.status, answer.headers, half)
            return True
        writer.write(_head(answer.status, answer.headers, len(answer.body)))
        await writer.drain()
        if kind == "truncated-lying":
            writer.write(half)
            await writer.drain()
            return False
        for index in range(len(answer.body)):  # slow-loris
            await asyncio.sleep(self.drip_interval)
            if writer.is_closing():
                return False
            writer.write(answer.body[index : index + 1])
            await writer.drain()
        return True

    def _choose(self, target: str | None, url: str) -> str | None:
        with self._lock:
            if target is None:
                self._requests["other"] += 1
                return None
            self._requests[target] += 1
            windows = len(self._windows)
            fresh = target == "page" and url not in self._windows
            if fresh:
                self._windows.add(url)
            for pending in self._pending:
                if pending.take(target, url, windows, fresh):
                    self._served[pending.fault.kind, target] += 1
                    return pending.fault.kind
        return None

    async def _forward(self, url: str, headers: dict[str, str]) -> _Answer:
        assert self._client is not None
        forwarded = {name: value for name, value in headers.items() if name not in _HOP}
        try:
            response = await self._client.get(url, headers=forwarded)
        except httpx.HTTPError as exc:
            text = f"upstream failed: {type(exc).__name__}".encode()
            return _Answer(502, [("Content-Type", "text/plain")], text)
        kept = [(name, value) for name, value in response.headers.items() if name not in _HOP]
        return _Answer(response.status_code, kept, response.content)

    async def _junk(self, writer: asyncio.StreamWriter) -> None:
        chunked = [("Content-Type", _JSON), ("Transfer-Encoding", "chunked")]
        writer.write(_head(200, chunked, None))
        frame = b"%x\r\n%s\r\n" % (len(payloads.JUNK_CHUNK), payloads.JUNK_CHUNK)
        for _ in range(self.junk_bytes // len(payloads.JUNK_CHUNK)):
            writer.write(frame)
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _request(head: bytes) -> tuple[str, dict[str, str]]:
    """The request target and headers (names in lower case) of a request head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ConnectionError(f"not an HTTP request line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return parts[1], headers


def _target(url: str) -> str | None:
    path = url.split("?", 1)[0].rstrip("/")
    if path.endswith("/changefeed/latest"):
        return "latest"
    if path.endswith("/changefeed"):
        return "page"
    return None


def _head(status: int, headers: list[tuple[str, str]], length: int | None) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers)]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(
    writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    writer.write(_head(status, headers, len(body)))
    writer.write(body)
    await writer.drain()
