"""The metrics and health listener (`http.listen`; off when absent, loopback by default).

- `/metrics`: Prometheus text exposition.
- `/healthz`: 200 while the process runs (liveness; the Docker HEALTHCHECK).
- `/` and `/status.json`: the status page and what it shows (`bridge.runtime.status`), when
  given as `pages`.
- `/readyz`: 503 with a JSON body naming what is not ready while `readiness` names a
  problem (`bridge.runtime.telemetry.Readiness`: those that lasted `http.unready_after`),
  else 200 (readiness).

HTTP/1.1 with h11 on asyncio streams, inside the bridge's event loop, bounded whatever a
client sends: a header block over `MAX_HEADER_BYTES` is answered 431 and the connection
closed; a request not complete within `REQUEST_TIMEOUT` of the connection's start or of
the previous answer (a half-request, an idle keep-alive connection) is cut; connections
beyond `MAX_CONNECTIONS` are closed as soon as they are accepted. Request bodies are never
read: a request carrying one gets its answer, then the connection is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import h11
import orjson

MAX_HEADER_BYTES = 16 * 1024
REQUEST_TIMEOUT = 5.0  # seconds
MAX_CONNECTIONS = 64
READ_BYTES = 4096  # a header block passes MAX_HEADER_BYTES by one read at most

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class Listener:
    """Serves what `metrics` (the exposition), `readiness` (the problems keeping the
    bridge from being ready, by component) and `pages` (by path: body and content type)
    return when asked: it knows nothing else."""

    def __init__(
        self,
        metrics: Callable[[], bytes],
        readiness: Callable[[], dict[str, str]],
        host: str,
        port: int,
        pages: Mapping[str, Callable[[], tuple[bytes, str]]] | None = None,
        *,
        details: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._metrics = metrics
        self._pages = {path.encode(): page for path, page in (pages or {}).items()}
        self._details = details
        self._readiness = readiness
        self.host, self._port = host, port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()

    async def serve(self) -> None:
        """Listen until `stop()`; raises OSError when the address cannot be bound."""
        self._server = await asyncio.start_server(self._connection, self.host, self._port)
        try:
            await self._stop.wait()
        finally:
            self._server.close()
            for task in self._connections:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    def stop(self) -> None:
        self._stop.set()

    @property
    def started(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    # -- connections ----------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._exchanges(reader, writer)
        except (TimeoutError, ConnectionError):
            pass  # cut, or gone
        finally:
            self._connections.discard(task)
            writer.close()

    async def _exchanges(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer the requests of one connection, each within REQUEST_TIMEOUT."""
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        while True:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                try:
                    request = await _next_request(connection, reader)
                    # Without a body the end of the request is already here; with one, it
                    # is never read: answer, then close.
                    complete = request is not None and isinstance(
                        connection.next_event(), h11.EndOfMessage
                    )
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    writer.write(_response(connection, status, str(exc).encode(), _TEXT))
                    await writer.drain()
                    return
                if request is None:
                    return
                writer.write(self._answer(connection, request, keep_alive=complete))
                await writer.drain()
            if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()

    # -- answers --------------------------------------------------------------------------

    def _answer(self, connection: h11.Connection, request: h11.Request, keep_alive: bool) -> bytes:
        status, body, content_type = self._route(request)
        if request.method == b"HEAD":
            return _response(connection, status, b"", content_type, len(body), keep_alive)
        return _response(connection, status, body, content_type, keep_alive=keep_alive)

    def _route(self, request: h11.Request) -> tuple[int, bytes, str]:
        if request.method not in (b"GET", b"HEAD"):
            return 405, b"only GET and HEAD", _TEXT
        path = request.target.split(b"?", 1)[0]
        if path == b"/metrics":
            return 200, self._metrics(), "text/plain; version=0.0.4; charset=utf-8"
        if path == b"/healthz":
            return 200, b'{"status":"alive"}', _JSON
        if path == b"/readyz":
            problems = self._readiness()
            answer: dict[str, Any] = {"ready": not problems, "problems": problems}
            if self._details is not None:
                answer.update(self._details())  # under `ha:`, the replica's role
            body = orjson.dumps(answer)
            return 503 if problems else 200, body, _JSON
        page = self._pages.get(path)
        if page is not None:
            return 200, *page()
        known = b", ".join([b"/metrics", b"/healthz", b"/readyz", *self._pages])
        return 404, b"not found: try " + known, _TEXT


async def _next_request(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> h11.Request | None:
    """The next request's head, or None once the client closed the connection."""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(READ_BYTES))  # b"": the client closed
        elif isinstance(event, h11.Request):
            return event
        else:  # ConnectionClosed
            return None


def _response(
    connection: h11.Connection,
    status: int,
    body: bytes,
    content_type: str,
    length: int | None = None,
    keep_alive: bool = False,
) -> bytes:
    headers = [
        ("content-type", content_type),
        ("content-length", str(len(body) if length is None else length)),
        ("x-content-type-options", "nosniff"),
    ]
    if content_type.startswith("text/html"):  # the status page: its own inline code only
        headers.append(("content-security-policy", _PAGE_POLICY))
    if not keep_alive:
        headers.append(("connection", "close"))
    reason = HTTPStatus(status).phrase.encode()
    data = connection.send(h11.Response(status_code=status, headers=headers, reason=reason))
    data += connection.send(h11.Data(data=body)) if body else b""
    return data + connection.send(h11.EndOfMessage())
