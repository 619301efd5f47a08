"""The one HTTP operation the feed client needs, GET, made in-process or by a helper process.

Reading the feed is mostly HTTP client work (httpx, in Python), and routing its entries is
Python work too: in one process they take turns on one core, and catch-up runs at half the
speed the machine allows. `HelperFetcher` hands each GET to a child process
(`python -m bridge.httphelper`), which performs it with its own keep-alive
`httpx.AsyncClient` and sends back status, headers and body; the bridge process then does
no HTTP client work at all. `HttpxFetcher` does the same in-process (probes, tests, and
`feed.http_helper: false`). Both raise httpx's transport exceptions, so everything above
them (retries, auth, parsing, fallbacks) is the same.

A helper that dies fails its pending requests as `httpx.ReadError` (the client retries
them) and the next request starts a new one. The child exits when its stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from http import HTTPStatus
from itertools import count
from typing import Protocol
from urllib.parse import urlencode

import httpx
import orjson

from bridge import __version__
from bridge.httphelper import LENGTH, read_frame

HEADERS = {"Accept": "application/json", "User-Agent": f"dicom-changefeed-bridge/{__version__}"}


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    content: bytes
    url: str

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Fetcher(Protocol):
    async def get(self, url: str, headers: dict[str, str]) -> Answer: ...

    async def close(self) -> None: ...


def url_with(base: str, params: dict) -> str:
    """`base?query`, with `+` and `:` percent-encoded (a bare `+` would arrive as a space)."""
    return f"{base}?{urlencode(params)}" if params else base


class HttpxFetcher:
    def __init__(
        self,
        *,
        max_connections: int,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(
            timeout=timeout, limits=limits, headers=HEADERS, transport=transport
        )

    async def get(self, url: str, headers: dict[str, str]) -> Answer:
        response = await self._client.get(url, headers=headers)
        return Answer(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            response.content,
            url,
        )

    async def close(self) -> None:
        await self._client.aclose()


class HelperFetcher:
    def __init__(self, *, max_connections: int, timeout: float) -> None:
        self._arguments = [str(max_connections), str(timeout)]
        self._process: asyncio.subprocess.Process | None = None
        self._reader_task: asyncio.Task | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = count()
        self._starting = asyncio.Lock()

    async def get(self, url: str, headers: dict[str, str]) -> Answer:
        process = await self._running()
        request_id = next(self._ids)
        reply = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        frame = orjson.dumps({"id": request_id, "url": url, "headers": HEADERS | headers})
        try:
            process.stdin.write(LENGTH.pack(len(frame)) + frame)
            await process.stdin.drain()
            head, body = await reply
        except (BrokenPipeError, ConnectionResetError):
            raise httpx.ReadError("the HTTP helper process exited") from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in head:
            error = getattr(httpx, head["error"], httpx.TransportError)
            if not (isinstance(error, type) and issubclass(error, httpx.TransportError)):
                error = httpx.TransportError
            raise error(head["message"])
        return Answer(head["status"], head["headers"], body, url)

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader_task is not None:
            self._reader_task.cancel()

    async def _running(self) -> asyncio.subprocess.Process:
        async with self._starting:
            if self._process is None or self._process.returncode is not None:
                self._process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bridge.httphelper", *self._arguments,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                self._reader_task = asyncio.create_task(self._read(self._process))
            return self._process

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        """Hand each answer to its request; fail the pending ones if the helper dies."""
        try:
            while True:
                head = orjson.loads(await read_frame(process.stdout))
                body = await read_frame(process.stdout)
                reply = self._pending.get(head["id"])
                if reply is not None and not reply.done():
                    reply.set_result((head, body))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        if self._process is process:  # the next request starts a new helper
            self._process = None
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(BrokenPipeError())
