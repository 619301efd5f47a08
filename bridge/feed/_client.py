"""HTTP access to the change feed: retries, parsing, fallbacks.

Requests the service refuses (400/401/403/404) raise `FeedRequestError`, one line naming the
URL. Every other failure is transient: retried with backoff (honouring `Retry-After`) for as
long as it takes, never skipped, never dead-lettered. That is connection errors, a request
running over `timeout` (the whole request: connecting, headers and body), 408/429/5xx, and
any answer that is not the page asked for (`bridge.feed._parse`). Each shows in
`last_error` (readiness), a warning and `responses` (by HTTP status, or "error", "timeout",
"invalid", "oversize"; exported as metrics).

An entry is poison only when a well-formed page holds an element `parse_entry` rejects the
same way on two reads in a row (a proxy can corrupt one read); it keeps its served bytes.

Two failures do not go away by retrying, and must not stall the bridge forever:
- a page with `includeMetadata=true` answering 500 `fallback_after` times (one missing
  metadata blob fails the whole page on the real server): it is read without metadata, then
  each entry that should carry metadata alone with it; those that still fail come without,
  flagged `metadata-unavailable`;
- an answer larger than `max_page_bytes` once decoded: the window is read again in smaller
  windows (`PageTooLarge` for a reader to split; `sequence_parts`), down to one entry; one
  entry over it is read without metadata (flagged); one still over it is transient.

`max_requests_per_second` bounds every request, retries and fallbacks included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import httpx
from aiolimiter import AsyncLimiter

from bridge.core.backoff import Backoff, parse_retry_after
from bridge.core.entry import Entry
from bridge.core.redact import scrub
from bridge.feed._auth import AuthProvider, NoAuth
from bridge.feed._errors import FeedError, FeedRequestError, TokenUnavailable
from bridge.feed._http import Answer, Fetcher, HelperFetcher, HttpxFetcher, url_with
from bridge.feed._parse import (
    MalformedPage,
    check_time_page,
    check_window,
    page_of,
    parse_latest,
)
from bridge.feed._timestamps import from_ticks, to_ticks
from bridge.helper import AnswerRefused, TooLarge

log = logging.getLogger("bridge.feed")

T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
METADATA_UNAVAILABLE = "metadata-unavailable"
DEFAULT_MAX_PAGE_BYTES = 4_000_000
#: States whose entries carry metadata when it is asked for.
_WITH_METADATA = frozenset({"Current", "Replaced"})
#: Reads one entry again with its metadata, by (sequence, timestamp): the rows it returns.
Reread = Callable[[int, str], Awaitable[list[Entry]]]


class PageTooLarge(Exception):
    """The answer to a request for several entries is over `max_page_bytes`: read the
    window in smaller ones."""


class _Exhausted(Exception):
    """A page with metadata kept answering 500."""


class FeedClient:
    """Reads pages of one feed (`base_url` without a version segment, `api_version` v1/v2)."""

    def __init__(
        self,
        base_url: str,
        api_version: str = "v1",
        *,
        auth: AuthProvider | None = None,
        timeout: float = 30.0,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
        max_requests_per_second: float | None = None,
        backoff: Backoff | None = None,
        fallback_after: int = 3,
        max_connections: int = 32,
        helper: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: Callable[[str, float], None] = lambda status, seconds: None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.auth = auth or NoAuth()
        self.backoff = backoff or Backoff()
        self.fallback_after = max(1, fallback_after)
        self.max_page_bytes = max_page_bytes
        self.responses: dict[str, int] = {}  # by status code, or error/timeout/invalid/oversize
        self.last_error: str | None = None  # None while the feed answers
        self.last_success: float | None = None  # Unix time of the last answer taken
        self.pages = 0
        self._on_request = on_request
        # One request at a time, `max_requests_per_second` of them: no burst. The fetcher
        # takes its turn just before the request leaves (after a helper's start, after
        # a token fetch), so waits elsewhere cannot bunch requests up.
        rate = max_requests_per_second
        limits: dict[str, Any] = {
            "max_connections": max_connections,
            "timeout": timeout,
            "max_bytes": max_page_bytes,
            "limiter": AsyncLimiter(1, 1 / rate) if rate else None,
        }
        self._fetch: Fetcher = (
            HelperFetcher(**limits)
            if helper and transport is None
            else HttpxFetcher(**limits, transport=transport)
        )

    async def close(self) -> None:
        await self._fetch.close()
        await self.auth.close()

    async def __aenter__(self) -> FeedClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- public reads -------------------------------------------------------------------

    async def latest(self) -> Entry | None:
        """The newest entry, or None on an empty feed (204, an empty body or `null`). It
        can be poison: only its sequence is sure, and a latest entry whose sequence cannot
        be read is retried like a truncated body (the end of the feed must be known)."""
        return await self._request("/changefeed/latest", {"includeMetadata": "false"}, parse_latest)

    async def probe(self) -> Entry | None:
        """One attempt at `latest`, no retries: for `check` and `offsets show`, which must
        answer promptly. Raises FeedError with one line on any failure."""
        url = url_with(self._url("/changefeed/latest"), {"includeMetadata": "false"})
        try:
            headers = await self._auth_headers()
        except Exception as exc:  # credential errors from azure-identity, token files
            raise FeedError(f"cannot authenticate to {url}: {exc}") from None
        try:
            response = await self._fetch.get(url, headers)
        except httpx.TransportError as exc:
            raise FeedError(f"cannot reach {url}: {_describe(exc)}") from None
        except AnswerRefused as exc:
            raise FeedError(f"unexpected answer from {url}: {exc}") from None
        if response.status not in (200, 204):
            raise FeedRequestError(response.status, url, _excerpt(response))
        try:
            return parse_latest(response)
        except MalformedPage as exc:
            raise FeedError(f"unexpected answer from {url}: {exc}") from None

    async def sequence_window(self, offset: int, limit: int, include_metadata: bool) -> list[Entry]:
        """v1: the entries with sequence in (offset, offset+limit], in sequence order,
        read in smaller windows if the answer is over `max_page_bytes`."""
        return [
            entry
            async for _, part in self.sequence_parts(offset, limit, include_metadata)
            for entry in part
        ]

    async def sequence_parts(
        self, offset: int, limit: int, include_metadata: bool, *, whole: bool = True
    ) -> AsyncIterator[tuple[int, list[Entry]]]:
        """v1: the window (offset, offset+limit] as consecutive windows whose answers fit
        `max_page_bytes`: (end of the window, its entries) each. The whole window is tried
        first unless `whole` is false (it is known not to fit)."""
        pending = [(offset, limit)] if whole else _halves(offset, limit)
        while pending:
            start, width = pending.pop()
            try:
                entries = await self.sequence_page(start, width, include_metadata)
            except PageTooLarge as exc:
                log.info("window (%d, %d] read in halves: %s", start, start + width, exc)
                pending += _halves(start, width)
                continue
            yield start + width, entries

    async def sequence_page(self, offset: int, limit: int, include_metadata: bool) -> list[Entry]:
        """v1: one window in one answer; raises PageTooLarge if it is over `max_page_bytes`
        and holds more than one sequence."""

        def query(metadata: bool) -> dict[str, Any]:
            return {"offset": offset, "limit": limit, "includeMetadata": _bool(metadata)}

        async def reread(sequence: int, timestamp: str) -> list[Entry]:
            params = {"offset": sequence - 1, "limit": 1, "includeMetadata": "true"}
            check = partial(check_window, offset=sequence - 1, limit=1)
            return await self._page(params, check, splittable=True, with_metadata=True)

        check = partial(check_window, offset=offset, limit=limit)
        return await self._window(query, check, limit, include_metadata, reread)

    async def time_window(
        self, start: str | None, end: str, offset: int, limit: int, include_metadata: bool
    ) -> list[Entry]:
        """v2: rows with start <= timestamp < end in (timestamp, sequence) order, skipping
        `offset` rows, read in smaller pages if an answer is over `max_page_bytes`."""
        rows: list[Entry] = []
        size = limit
        while len(rows) < limit:
            asked = min(size, limit - len(rows))
            try:
                part = await self.time_page(start, end, offset + len(rows), asked, include_metadata)
            except PageTooLarge:
                size = max(1, asked // 2)
                continue
            rows += part
            if len(part) < asked:
                break
        return rows

    async def time_page(
        self, start: str | None, end: str, offset: int, limit: int, include_metadata: bool
    ) -> list[Entry]:
        """v2: one page in one answer; raises PageTooLarge if it is over `max_page_bytes`
        and `limit` is more than one row. `start`/`end` are sent as given (explicit zone,
        `+` encoded)."""

        def query(metadata: bool, first: str | None = start, last: str = end) -> dict[str, Any]:
            params: dict[str, Any] = {"endTime": last, "offset": offset, "limit": limit}
            params["includeMetadata"] = _bool(metadata)
            if first is not None:
                params["startTime"] = first
            return params

        async def reread(sequence: int, moment: str) -> list[Entry]:
            # Every row with exactly this timestamp; the caller picks the same sequence.
            after = from_ticks(to_ticks(moment) + 1)
            params = {**query(True, moment, after), "offset": 0, "limit": 200}
            check = partial(check_time_page, start=moment, end=after, limit=200)
            return await self._page(params, check, splittable=True, with_metadata=True)

        check = partial(check_time_page, start=start, end=end, limit=limit)
        return await self._window(query, check, limit, include_metadata, reread)

    # -- fallbacks ------------------------------------------------------------------------

    async def _window(
        self,
        query: Callable[[bool], dict[str, Any]],
        check: Callable[[list[Entry]], None],
        limit: int,
        include_metadata: bool,
        reread: Reread,
    ) -> list[Entry]:
        """One page; with metadata, the fallbacks for a page that cannot be served with it
        (500s) and for a single entry too large with it."""
        try:
            return await self._page(
                query(include_metadata),
                check,
                splittable=limit > 1 or include_metadata,
                with_metadata=include_metadata,
            )
        except PageTooLarge:
            if limit > 1:
                raise
            url = self._page_url(query(False))
            log.warning("the entry of %s is too large with its metadata: read without", url)
            return _flagged(await self._page(query(False), check, splittable=False))
        except _Exhausted as exc:
            url = self._page_url(query(False))
            log.warning("%s fails with metadata (%s): read without, then entry by entry", url, exc)
        entries = await self._page(query(False), check, splittable=limit > 1)
        return await self._restore_metadata(entries, reread)

    async def _restore_metadata(self, entries: list[Entry], reread: Reread) -> list[Entry]:
        """Re-read, one at a time, the entries that should carry metadata; flag the ones
        whose metadata still cannot be read."""
        restored = []
        for entry in entries:
            sequence = entry.sequence
            if sequence is None or entry.poison or entry.state not in _WITH_METADATA:
                restored.append(entry)
                continue
            try:
                found = await reread(sequence, entry.timestamp)
            except (_Exhausted, PageTooLarge) as exc:
                log.warning("metadata of sequence %s unavailable: %s", sequence, exc)
                found = []
            match = next((e for e in found if e.sequence == sequence and not e.poison), None)
            restored.append(match or _flagged([entry])[0])
        return restored

    # -- HTTP ---------------------------------------------------------------------------

    async def _page(
        self,
        params: dict[str, Any],
        check: Callable[[list[Entry]], None],
        *,
        splittable: bool,
        with_metadata: bool = False,
    ) -> list[Entry]:
        """One checked page. Its poison entries are believed when a second read serves the
        same ones (a proxy can corrupt one read)."""
        seen: list[bytes | None] | None = None
        while True:
            entries = await self._request(
                "/changefeed",
                params,
                partial(page_of, check=check, limit=int(params["limit"])),
                splittable=splittable,
                with_metadata=with_metadata,
            )
            poison = [entry.json for entry in entries if entry.poison]
            if not poison or poison == seen:
                self.pages += 1
                return entries
            first = next(entry for entry in entries if entry.poison)
            log.warning(
                "%s holds %d unreadable entries (sequence %s: %s); reading it again to confirm",
                self._page_url(params), len(poison), first.sequence, first.problem,
            )  # fmt: skip
            seen = poison

    async def _request(
        self,
        path: str,
        params: dict[str, Any],
        accept: Callable[[Answer], T],
        *,
        splittable: bool = False,
        with_metadata: bool = False,
    ) -> T:
        """GET until `accept` takes a 200/204 answer, retrying every transient failure.
        Raises `PageTooLarge` for an answer over the cap when `splittable`, `_Exhausted`
        when a request `with_metadata` answers 500 `fallback_after` times."""
        url = url_with(self._url(path), params)
        attempt = server_errors = 0
        refreshed = False
        while True:
            started = time.monotonic()
            retry_after: float | None = None
            try:
                answer = await self._fetch.get(url, await self._auth_headers())
            except TokenUnavailable as exc:
                status, problem = "error", str(exc)
            except TooLarge as exc:
                status = "oversize"
                if splittable:
                    self._count(status, started)
                    raise PageTooLarge(str(exc)) from None
                problem = f"{exc} (feed.max_page_bytes: {self.max_page_bytes} bytes)"
            except AnswerRefused as exc:
                status, problem = "invalid", str(exc)
            except httpx.TimeoutException as exc:
                status, problem = "timeout", _describe(exc)
            except httpx.TransportError as exc:
                status, problem = "error", f"cannot reach the feed: {_describe(exc)}"
            else:
                status = str(answer.status)
                retry_after = parse_retry_after(answer.headers.get("retry-after"))
                if answer.status in (200, 204):
                    try:
                        result = accept(answer)
                    except MalformedPage as exc:
                        status, problem = "invalid", f"not a change-feed answer: {exc}"
                    else:
                        self._count(status, started)
                        self.last_error, self.last_success = None, time.time()
                        return result
                elif answer.status in TRANSIENT_STATUSES or answer.status >= 500:
                    problem = f"{answer.status} {_excerpt(answer)}"
                    server_errors += answer.status == 500
                    if with_metadata and server_errors >= self.fallback_after:
                        self._count(status, started)
                        raise _Exhausted(problem)
                else:
                    self._count(status, started)
                    if answer.status == 401 and not refreshed and await self.auth.refresh():
                        refreshed = True
                        continue
                    raise FeedRequestError(answer.status, url, _excerpt(answer))
            self._count(status, started)
            self.last_error = f"GET {url}: {problem}"
            await self._pause(url, problem, attempt, retry_after)
            attempt += 1

    async def _auth_headers(self) -> dict[str, str]:
        authorization = await self.auth.header()
        return {"Authorization": authorization} if authorization else {}

    def _count(self, status: str, started: float) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1
        self._on_request(status, time.monotonic() - started)

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{self.api_version}{path}"

    def _page_url(self, params: dict[str, Any]) -> str:
        return url_with(self._url("/changefeed"), params)

    async def _pause(self, url: str, reason: str, attempt: int, retry_after: float | None) -> None:
        delay = self.backoff.delay(attempt, retry_after)
        log.warning("feed request GET %s failed (%s); retrying in %.1fs", url, reason, delay)
        await asyncio.sleep(delay)


def _halves(offset: int, limit: int) -> list[tuple[int, int]]:
    """The two halves of a window, the first last (popped first)."""
    half = limit // 2
    halves = ((offset + half, limit - half), (offset, half))
    return [(start, width) for start, width in halves if width]


def _flagged(entries: list[Entry]) -> list[Entry]:
    for entry in entries:
        entry.flags = (*entry.flags, METADATA_UNAVAILABLE)
    return entries


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _excerpt(response: Answer, limit: int = 200) -> str:
    # Secrets the service echoes are masked before the cut, which could leave part of one.
    start = response.content[: limit * 8].decode("utf-8", errors="replace")
    text = " ".join(scrub(start).split())
    text = text or response.reason or "no body"
    return text if len(text) <= limit else text[: limit - 3] + "..."
