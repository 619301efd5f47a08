"""Small JSON blobs in one Azure Blob Storage container, read with their ETag and written
only if unchanged since (compare-and-swap): the azure_blob offset store's building block.

Every call is retried with backoff while the service is unreachable or answers with a
transient status (408, 429, 5xx: the engine restarting, throttling), for as long as it
takes once the service has answered this process: an outage is waited out. Before the
first answer, retries stop after `first_contact` seconds (a wrong account URL, a firewall,
`check` and the `offsets` commands on a dead service fail with one line instead of
hanging). A refusal (a bad key, a missing role) is an `OffsetStoreError` at once.

A write that failed in transit may have landed: each write carries a nonce (`writer`), so
when its retry finds the condition failed, the blob is read again, and a blob holding our
nonce is our own write, not a conflict.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import orjson

from bridge.core import Backoff, CredentialError, parse_retry_after, scrub
from bridge.offsets._store import OffsetStoreError

T = TypeVar("T")
log = logging.getLogger("bridge.offsets")

#: Statuses worth retrying: the service is restarting, busy or timed out.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Retries logged as warnings: the first, then one in this many.
WARN_EVERY = 10
_QUERY = re.compile(r"(https?://[^\s?#]+)\?[^\s#]*")
#: Conditional writes losing to other writers in a row before giving up.
MAX_CONFLICTS = 100


@dataclass(frozen=True, slots=True)
class Found:
    """A blob's content and version; `date` is the service's clock when it answered."""

    body: dict[str, Any]
    etag: str
    last_modified: datetime
    date: datetime


class Blobs:
    """The container's blobs under `prefix`, through an azure-storage-blob aio
    `ContainerClient` (created on first use when missing)."""

    def __init__(
        self,
        container: Any,
        where: str,
        *,
        backoff: Backoff = Backoff(initial=0.2, maximum=5.0),  # noqa: B008 - frozen
        on_close: Callable[[], Awaitable[None]] | None = None,
        first_contact: float = 30.0,
    ) -> None:
        self.container = container
        self.where = where
        self.backoff = backoff
        self.first_contact = first_contact
        self._on_close = on_close
        self._ready = False
        self._answered = False  # the service answered once: from then on, outages are waited out

    async def get(self, name: str) -> Found | None:
        """The blob, or None when there is none."""
        from azure.core.exceptions import ResourceNotFoundError

        dates: list[str] = []

        def seen(response: Any) -> None:
            dates.append(response.http_response.headers.get("Date", ""))

        async def download() -> Found | None:
            try:
                stream = await self.container.get_blob_client(name).download_blob(
                    raw_response_hook=seen
                )
                data = await stream.readall()
            except ResourceNotFoundError:
                return None
            properties = stream.properties
            return Found(
                _decode(data, name, self.where),
                properties.etag,
                properties.last_modified,
                _http_date(dates[-1] if dates else ""),
            )

        return await self.call(f"read {name}", download)

    async def put(self, name: str, body: dict[str, Any], etag: str | None) -> Found | None:
        """Write `body` if the blob is still at `etag` (None: if there is no blob yet); the
        version written, or None when the condition failed (another writer came first)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.storage.blob import ContentSettings

        nonce = uuid.uuid4().hex
        body = {**body, "writer": nonce}
        data = orjson.dumps(body)
        tries = 0
        conditions: dict[str, Any] = (
            {"overwrite": False}
            if etag is None
            else {"overwrite": True, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        )

        async def upload() -> Found | None:
            nonlocal tries
            tries += 1
            blob = self.container.get_blob_client(name)
            try:
                written = await blob.upload_blob(
                    data,
                    content_settings=ContentSettings(content_type="application/json"),
                    **conditions,
                )
            except (ResourceExistsError, ResourceModifiedError):
                return None
            return Found(body, written["etag"], written["last_modified"], written["last_modified"])

        result = await self.call(f"write {name}", upload)
        if result is None and tries > 1:  # did an attempt that failed in transit land?
            current = await self.get(name)
            if current is not None and current.body.get("writer") == nonce:
                return current
        return result

    async def delete(self, name: str, etag: str) -> bool:
        """Delete the blob if it is still at `etag`; False when it changed or is gone."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        async def remove() -> bool:
            try:
                await self.container.get_blob_client(name).delete_blob(
                    etag=etag, match_condition=MatchConditions.IfNotModified
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return False
            return True

        return await self.call(f"delete {name}", remove)

    async def names(self, prefix: str) -> list[str]:
        """The names of the blobs starting with `prefix`, sorted."""

        async def collect() -> list[str]:
            found: AsyncIterator[Any] = self.container.list_blobs(name_starts_with=prefix)
            return sorted([blob.name async for blob in found])

        return await self.call(f"list {prefix}", collect)

    async def call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """`operation`, retried while the failure is transient (the container created first
        when this is the first call)."""
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                if not self._ready:
                    await self._create_container()
                result = await operation()
                self._answered = True
                if attempt:
                    log.info(
                        "offset store %s: connected again (%s after %d failed attempts, %.1fs)",
                        self.where,
                        what,
                        attempt,
                        time.monotonic() - started,
                    )
                return result
            except (asyncio.CancelledError, OffsetStoreError):
                raise
            except Exception as exc:
                transient, reason, retry_after = _classify(exc)
                if not transient:
                    raise OffsetStoreError(f"offset store {self.where}: {what}: {reason}") from None
                delay = self.backoff.delay(attempt, retry_after)
                if not self._answered and time.monotonic() + delay - started > self.first_contact:
                    raise OffsetStoreError(
                        f"offset store {self.where}: {what}: {reason} (no answer for "
                        f"{self.first_contact:.0f}s)"
                    ) from None
                if attempt % WARN_EVERY == 0:
                    log.warning(
                        "offset store %s: %s failed (%s); retrying in %.1fs (attempt %d)",
                        self.where,
                        what,
                        reason,
                        delay,
                        attempt + 1,
                    )
                attempt += 1
                await asyncio.sleep(delay)

    async def _create_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            await self.container.create_container()
            log.info("offset store %s: container created", self.where)
        except ResourceExistsError:
            pass
        self._ready = True

    async def close(self) -> None:
        await self.container.close()
        if self._on_close is not None:
            await self._on_close()


def _classify(exc: Exception) -> tuple[bool, str, float | None]:
    """Whether `exc` is worth retrying, its one-line reason (without secrets) and the
    service's Retry-After."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, CredentialError):
        return not exc.refused, str(exc), None
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, TimeoutError, OSError)):
        return True, f"unreachable: {_first_line(exc)}", None
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = getattr(exc, "error_code", None) or exc.reason or "error"
        reason = f"{status} {code}"
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            reason += " (check the key, or the identity's Storage Blob Data Contributor role)"
            return False, reason, None
        headers = getattr(exc.response, "headers", None) or {}
        hint = headers.get("Retry-After")
        return status in TRANSIENT_STATUS, reason, parse_retry_after(hint)
    return False, f"{type(exc).__name__}: {_first_line(exc)}", None


def _first_line(exc: BaseException) -> str:
    """The first line of its message, URLs without their query (a SAS token's signature)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return _QUERY.sub(r"\1", scrub(line))[:300]


def _decode(data: bytes, name: str, where: str) -> dict[str, Any]:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise OffsetStoreError(f"offset store {where}: {name} is not a JSON object (damaged)")
    return body


def _http_date(value: str) -> datetime:
    """The service's `Date` header; this host's clock if it is missing."""
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return datetime.now(UTC)
