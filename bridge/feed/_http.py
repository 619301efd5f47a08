"""The one HTTP operation the feed client needs, GET, made in-process or by a helper process.

Reading the feed is mostly HTTP client work (httpx, in Python), and routing its entries is
Python work too: in one process they take turns on one core, and catch-up runs at half the
speed the machine allows. `HelperFetcher` hands each GET to a child process
(`python -m bridge.helper`), which performs it with its own keep-alive
`httpx.AsyncClient` and sends back status, headers and body; the bridge process then does
no HTTP client work at all. `HttpxFetcher` does the same in-process (probes, tests, and
`feed.http_helper: false`). Both make the GET with `bridge.helper.fetch` (a deadline
for the whole request, a bounded decoded body) and raise httpx's transport exceptions,
`TooLarge` or `AnswerRefused`, so everything above them is the same.

A helper that dies, answers beyond its bounds or stops answering (no answer `grace`
seconds past its own deadline) is killed and reaped; its pending requests fail as
`httpx.ReadError` (the client retries them) and the next request starts a new one. The
child exits when its stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from http import HTTPStatus
from itertools import count
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
import orjson
from aiolimiter import AsyncLimiter

from bridge import __version__
from bridge.core.blockingio import os_reason
from bridge.feed._errors import FeedError
from bridge.helper import (
    ACCEPT_ENCODING,
    ERROR_BODY_BYTES,
    HEAD_BYTES,
    LENGTH,
    AnswerRefused,
    TooLarge,
    fetch,
    read_frame,
)

HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": ACCEPT_ENCODING,
    "User-Agent": f"dicom-changefeed-bridge/{__version__}",
}
_REFUSALS: dict[str, type[Exception]] = {"TooLarge": TooLarge, "AnswerRefused": AnswerRefused}
_Reply = asyncio.Future[tuple[dict[str, Any], bytes]]  # a helper's answer: head, body


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


def url_with(base: str, params: dict[str, Any]) -> str:
    """`base?query`, with `+` and `:` percent-encoded (a bare `+` would arrive as a space)."""
    return f"{base}?{urlencode(params)}" if params else base


class HttpxFetcher:
    def __init__(
        self,
        *,
        max_connections: int,
        timeout: float,
        max_bytes: int,
        limiter: AsyncLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(
            timeout=timeout, limits=limits, headers=HEADERS, transport=transport
        )
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.limiter = limiter

    async def get(self, url: str, headers: dict[str, str]) -> Answer:
        if self.limiter is not None:
            await self.limiter.acquire()
        status, received, body = await fetch(
            self._client, url, headers, timeout=self.timeout, max_bytes=self.max_bytes
        )
        return Answer(status, received, bytes(body), url)

    async def close(self) -> None:
        await self._client.aclose()


class HelperFetcher:
    #: Seconds past the helper's own deadline after which it is taken for wedged.
    grace = 5.0

    def __init__(
        self,
        *,
        max_connections: int,
        timeout: float,
        max_bytes: int,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.limiter = limiter
        self._helper: _Helper | None = None
        self._ids = count()
        self._starting = asyncio.Lock()

    async def get(self, url: str, headers: dict[str, str]) -> Answer:
        helper = await self._running()
        if self.limiter is not None:
            await self.limiter.acquire()  # after the helper's start: no burst once it is up
            if not helper.alive:  # replaced meanwhile
                helper = await self._running()
        request_id = next(self._ids)
        reply: _Reply = asyncio.get_running_loop().create_future()
        helper.pending[request_id] = reply
        frame = orjson.dumps({"id": request_id, "url": url, "headers": HEADERS | headers})
        stdin = helper.stdin
        try:
            async with asyncio.timeout(self.timeout + self.grace):
                stdin.write(LENGTH.pack(len(frame)) + frame)
                await stdin.drain()
                head, body = await reply
        except TimeoutError:
            await helper.stop()
            raise httpx.ReadTimeout("the HTTP helper process stopped answering") from None
        except (BrokenPipeError, ConnectionResetError):
            raise httpx.ReadError("the HTTP helper process exited") from None
        finally:
            helper.pending.pop(request_id, None)
        if "error" in head:
            raise _error(head["error"], head["message"])
        return Answer(head["status"], head["headers"], body, url)

    async def close(self) -> None:
        helper, self._helper = self._helper, None
        if helper is not None:
            await helper.close()

    async def _running(self) -> _Helper:
        async with self._starting:
            if self._helper is None or not self._helper.alive:
                try:
                    process = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "bridge.helper",
                        str(self.max_connections), str(self.timeout), str(self.max_bytes),
                        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                except OSError as exc:
                    raise FeedError(
                        f"cannot start the HTTP helper process ({sys.executable} -m "
                        f"bridge.helper): {os_reason(exc, sys.executable)}; set "
                        "`feed.http_helper: false` to make the feed's requests in the "
                        "bridge's own process"
                    ) from None
                self._helper = _Helper(process, max(self.max_bytes, ERROR_BODY_BYTES))
            return self._helper


class _Helper:
    """One helper process, the requests waiting for its answers and the task reading them.
    However it ends, the process is killed and reaped and its pending requests fail."""

    def __init__(self, process: asyncio.subprocess.Process, body_limit: int) -> None:
        assert process.stdin is not None and process.stdout is not None  # started with pipes
        self.process = process
        self.stdin, self.stdout = process.stdin, process.stdout
        self.body_limit = body_limit  # a larger answer means the helper misbehaves
        self.pending: dict[int, _Reply] = {}
        self._stopped = False
        self._reader = asyncio.create_task(self._read())

    @property
    def alive(self) -> bool:
        return not self._stopped and self.process.returncode is None

    async def _read(self) -> None:
        """Hand each answer to its request, until the helper exits or misbehaves."""
        stdout = self.stdout
        try:
            while True:
                head = orjson.loads(await read_frame(stdout, HEAD_BYTES))
                body = await read_frame(stdout, self.body_limit)
                reply = self.pending.get(head["id"])
                if reply is not None and not reply.done():
                    reply.set_result((head, body))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, KeyError, TypeError):
            pass
        await self.stop()

    async def stop(self) -> None:
        """Kill and reap the process now; fail the requests waiting for it."""
        self._stopped = True
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()
        for reply in self.pending.values():
            if not reply.done():
                reply.set_exception(BrokenPipeError())

    async def close(self) -> None:
        """Let the process exit (its stdin closed), kill it if it lingers."""
        self._stopped = True
        if self.process.returncode is None:
            self.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5)
        await self.stop()
        self._reader.cancel()


def _error(name: str, message: str) -> Exception:
    """The exception a helper reported, by class name (a transport error if unknown)."""
    error: object = _REFUSALS.get(name) or getattr(httpx, name, httpx.TransportError)
    if not (isinstance(error, type) and issubclass(error, (httpx.TransportError, AnswerRefused))):
        error = httpx.TransportError
    return error(message)
