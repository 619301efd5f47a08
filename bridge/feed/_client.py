"""HTTP access to the change feed: keep-alive GETs (`_http`), retries, parsing.

Transient failures (connection errors, timeouts, 408/429/5xx, a truncated or unparseable
body) are retried with backoff for as long as it takes: data is never skipped. Requests the
service refuses (400/401/403/404) raise `FeedRequestError`, one line naming the URL.

Two failures do not go away by retrying, and must not stall the bridge forever:
- a page with `includeMetadata=true` answering 500 (one missing metadata blob fails the whole
  page on the real server), and
- a page whose body never parses (e.g. DICOM JSON the service cannot serialise).
After `fallback_after` attempts, such a page is read again without metadata and then entry
by entry, so the good entries go through, entries whose metadata cannot be read are flagged
`metadata-unavailable`, and an entry that still cannot be parsed becomes a poison entry for
the dead-letter target.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from bridge.backoff import Backoff, parse_retry_after
from bridge.feed._auth import AuthProvider, NoAuth
from bridge.feed._entry import Entry, parse_entry, parse_served
from bridge.feed._errors import FeedError, FeedRequestError
from bridge.feed._http import Answer, Fetcher, HelperFetcher, HttpxFetcher, url_with
from bridge.feed._timestamps import from_ticks, to_ticks
from bridge.redact import scrub

log = logging.getLogger("bridge.feed")

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
METADATA_UNAVAILABLE = "metadata-unavailable"
#: States whose entries carry metadata when it is asked for (changefeed-api.md §4).
_WITH_METADATA = frozenset({"Current", "Replaced"})


class MalformedPage(Exception):
    """A 200 response whose body is not a JSON array (or object, for latest)."""


class _Exhausted(Exception):
    """The attempt budget of a fallback-able request ran out."""


class FeedClient:
    """Reads pages of one feed (`base_url` without a version segment, `api_version` v1/v2)."""

    def __init__(
        self,
        base_url: str,
        api_version: str = "v1",
        *,
        auth: AuthProvider | None = None,
        timeout: float = 30.0,
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
        self.responses: dict[str, int] = {}  # by status code, "error" for transport errors
        self.last_error: str | None = None  # None while the feed answers
        self.pages = 0
        self._on_request = on_request
        self._base = f"{self.base_url}/{api_version}"
        self._fetch: Fetcher = (
            HelperFetcher(max_connections=max_connections, timeout=timeout)
            if helper and transport is None
            else HttpxFetcher(max_connections=max_connections, timeout=timeout, transport=transport)
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
        params = {"includeMetadata": "false"}
        while True:
            response = await self._get("/changefeed/latest", params)
            try:
                return _parse_latest(response)
            except MalformedPage as exc:
                await self._pause(response.url, f"unparseable latest: {exc}", 0, None)

    async def probe(self) -> Entry | None:
        """One attempt at `latest`, no retries: for `check` and `offsets show`, which must
        answer promptly. Raises FeedError with one line on any failure."""
        url = url_with(self._url("/changefeed/latest"), {"includeMetadata": "false"})
        try:
            response = await self._fetch.get(url, await self._auth_headers())
        except httpx.TransportError as exc:
            raise FeedError(f"cannot reach {url}: {_describe(exc)}") from None
        except Exception as exc:  # credential errors from azure-identity, token files
            raise FeedError(f"cannot authenticate to {url}: {exc}") from None
        if response.status not in (200, 204):
            raise FeedRequestError(response.status, url, _excerpt(response))
        try:
            return _parse_latest(response)
        except MalformedPage as exc:
            raise FeedError(f"unexpected answer from {url}: {exc}") from None

    async def sequence_window(self, offset: int, limit: int, include_metadata: bool) -> list[Entry]:
        """v1: the entries with sequence in (offset, offset+limit], in sequence order."""

        def params(offset: int, limit: int, metadata: bool) -> dict[str, Any]:
            return {"offset": offset, "limit": limit, "includeMetadata": _bool(metadata)}

        async def read_sequence(sequence: int, metadata: bool) -> list[Entry]:
            return await self._page(params(sequence - 1, 1, metadata))

        async def reread(entry: Entry) -> list[Entry]:
            return await read_sequence(entry.sequence, True)

        try:
            return await self._page(params(offset, limit, include_metadata))
        except _Exhausted as exc:
            log.warning("reading (%d, %d] entry by entry: %s", offset, offset + limit, exc)
        if include_metadata:
            entries = await self._try_without_metadata(params(offset, limit, False))
            if entries is not None:
                return await self._restore_metadata(entries, reread)
        entries = []
        for sequence in range(offset + 1, offset + limit + 1):
            entries += await self._read_single(read_sequence, sequence, include_metadata, sequence)
        return entries

    async def time_window(
        self, start: str | None, end: str, offset: int, limit: int, include_metadata: bool
    ) -> list[Entry]:
        """v2: rows with start <= timestamp < end in (timestamp, sequence) order, skipping
        `offset` rows. `start`/`end` are sent as given (explicit zone, `+` encoded)."""

        def params(start: str | None, end: str, offset: int, limit: int, metadata: bool):
            query: dict[str, Any] = {
                "endTime": end,
                "offset": offset,
                "limit": limit,
                "includeMetadata": _bool(metadata),
            }
            if start is not None:
                query["startTime"] = start
            return query

        async def read_offset(position: int, metadata: bool) -> list[Entry]:
            return await self._page(params(start, end, position, 1, metadata))

        async def reread(entry: Entry) -> list[Entry]:
            # Every row with exactly this timestamp; the caller picks the same sequence.
            moment = entry.timestamp
            after = from_ticks(to_ticks(moment) + 1)
            return await self._page(params(moment, after, 0, 200, True))

        try:
            return await self._page(params(start, end, offset, limit, include_metadata))
        except _Exhausted as exc:
            log.warning("reading [%s, %s) row by row from offset %d: %s", start, end, offset, exc)
        if include_metadata:
            entries = await self._try_without_metadata(params(start, end, offset, limit, False))
            if entries is not None:
                return await self._restore_metadata(entries, reread)
        entries = []
        for position in range(offset, offset + limit):
            found = await self._read_single(read_offset, position, include_metadata, None)
            if not found:
                break
            entries += found
        return entries

    # -- fallbacks ------------------------------------------------------------------------

    async def _try_without_metadata(self, params: dict[str, Any]) -> list[Entry] | None:
        try:
            return await self._page(params)
        except _Exhausted:
            return None

    async def _restore_metadata(
        self, entries: list[Entry], reread: Callable[[Entry], Awaitable[list[Entry]]]
    ) -> list[Entry]:
        """Re-read, one at a time, the entries that should carry metadata; flag the ones
        whose metadata still cannot be read."""
        restored = []
        for entry in entries:
            if entry.poison or entry.state not in _WITH_METADATA:
                restored.append(entry)
                continue
            try:
                found = await reread(entry)
            except _Exhausted as exc:
                log.warning("metadata of sequence %s unavailable: %s", entry.sequence, exc)
                found = []
            match = next((e for e in found if e.sequence == entry.sequence), None)
            if match is None:
                entry.flags = (*entry.flags, METADATA_UNAVAILABLE)
                match = entry
            restored.append(match)
        return restored

    async def _read_single(
        self,
        read: Callable[[int, bool], Awaitable[list[Entry]]],
        key: int,
        include_metadata: bool,
        sequence: int | None,
    ) -> list[Entry]:
        """One entry of a window that failed as a whole: with metadata if asked, else
        without (flagged), else a poison entry carrying the reason."""
        try:
            return await read(key, include_metadata)
        except _Exhausted as exc:
            reason = str(exc)
        if include_metadata:
            try:
                found = await read(key, False)
            except _Exhausted as exc:
                reason = str(exc)
            else:
                for entry in found:
                    entry.flags = (*entry.flags, METADATA_UNAVAILABLE)
                return found
        return [_unreadable(sequence, reason)]

    # -- HTTP ---------------------------------------------------------------------------

    async def _page(self, params: dict[str, Any]) -> list[Entry]:
        """One page. Raises `_Exhausted` when the body never parses, or when a page with
        metadata keeps answering 500; every other failure is retried without limit."""
        with_metadata = params["includeMetadata"] == "true"
        attempts = 0
        while True:
            response = await self._get(
                "/changefeed", params, budget=self.fallback_after if with_metadata else None
            )
            try:
                entries = parse_page(response.content)
            except MalformedPage as exc:
                attempts += 1
                if attempts >= self.fallback_after:
                    raise _Exhausted(f"unparseable page: {exc}") from None
                await self._pause(response.url, f"unparseable page: {exc}", attempts - 1, None)
                continue
            self.pages += 1
            return entries

    async def _get(self, path: str, params: dict[str, Any], *, budget: int | None = None) -> Answer:
        """GET with retries. With a `budget`, 500s count against it (a 500 that persists on
        an includeMetadata page is the fallback case); other transient errors never do."""
        url = url_with(self._url(path), params)
        attempt = 0
        server_errors = 0
        refreshed = False
        while True:
            headers = await self._auth_headers()
            started = time.monotonic()
            try:
                response = await self._fetch.get(url, headers)
            except httpx.TransportError as exc:
                self._count("error", started)
                self.last_error = f"cannot reach {url}: {_describe(exc)}"
                await self._pause(url, _describe(exc), attempt, None)
                attempt += 1
                continue
            status = response.status
            self._count(str(status), started)
            if status in (200, 204):
                self.last_error = None
                return response
            self.last_error = f"{status} from GET {url}: {_excerpt(response)}"
            if status in TRANSIENT_STATUSES or status >= 500:
                if status == 500 and budget is not None:
                    server_errors += 1
                    if server_errors >= budget:
                        raise _Exhausted(f"{status} {_excerpt(response)}")
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                await self._pause(url, f"{status} {_excerpt(response)}", attempt, retry_after)
                attempt += 1
                continue
            if status == 401 and not refreshed and await self.auth.refresh():
                refreshed = True
                continue
            raise FeedRequestError(status, url, _excerpt(response))

    async def _auth_headers(self) -> dict[str, str]:
        authorization = await self.auth.header()
        return {"Authorization": authorization} if authorization else {}

    def _count(self, status: str, started: float) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1
        self._on_request(status, time.monotonic() - started)

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{self.api_version}{path}"

    async def _pause(self, url: Any, reason: str, attempt: int, retry_after: float | None):
        delay = self.backoff.delay(attempt, retry_after)
        log.warning("feed request GET %s failed (%s); retrying in %.1fs", url, reason, delay)
        await asyncio.sleep(delay)


def parse_page(body: bytes) -> list[Entry]:
    """A change-feed page: a JSON array of entries (each parsed tolerantly)."""
    entries = _cut_page(body)
    if entries is not None:
        return entries
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPage(f"invalid JSON ({exc}) in {len(body)} bytes") from None
    if not isinstance(value, list):
        raise MalformedPage(f"expected a JSON array, got {type(value).__name__}")
    return [parse_entry(item) for item in value]


_FIRST, _NEXT = b'[{"sequence":', b',{"sequence":'


def _cut_page(body: bytes) -> list[Entry] | None:
    """Cut a page as the server writes it (compact, `sequence` first) into its entries'
    exact bytes, so they can be forwarded without being encoded again. A cut inside a
    string value leaves a piece that does not parse: then None, and the page is parsed
    whole instead. So is a page with line breaks: events embed these bytes, and JSON Lines
    sinks need each event on one line."""
    if not (body.startswith(_FIRST) and body.endswith(b"}]")) or b"\n" in body or b"\r" in body:
        return None
    entries = []
    start, end = 1, len(body) - 1
    while start < end:
        cut = body.find(_NEXT, start, end)
        stop = end if cut < 0 else cut
        try:
            entries.append(parse_served(body[start:stop]))
        except orjson.JSONDecodeError:
            return None
        start = stop + 1
    return entries


def _parse_latest(response: Answer) -> Entry | None:
    body = response.content.strip()
    if response.status == 204 or not body or body == b"null":
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPage(f"invalid JSON ({exc})") from None
    entry = parse_entry(value)
    if entry.sequence is None:  # the sequence is what readers need of the latest entry
        raise MalformedPage(entry.problem or "invalid entry")
    return entry


def _unreadable(sequence: int | None, reason: str) -> Entry:
    entry = parse_entry(None)
    entry.sequence = sequence
    entry.problem = f"entry cannot be read: {reason}"
    return entry


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _excerpt(response: Answer, limit: int = 200) -> str:
    # Secrets the service echoes are masked before the cut, which could leave part of one.
    start = response.content[: limit * 8].decode("utf-8", errors="replace")
    text = " ".join(scrub(start).split())
    text = text or response.reason or "no body"
    return text if len(text) <= limit else text[: limit - 3] + "..."
