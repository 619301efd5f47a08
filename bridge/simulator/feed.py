"""The change-feed routes: `/v{1.0-prerelease|1|2}/changefeed[/latest]` (docs/changefeed.md).

Order of checks, as the real pipeline runs them: routing (404, 400 for an unsupported API
version, 405), then injected latency and failures, authentication (401), query binding (400),
the DataActions.Read check (403), and the read itself: a v1 window or v1 latest that covers
an in-flight row waits for its commit (HOLDLOCK), v2 never sees a row before its commit, and
a page that needs a missing metadata blob fails whole with 500.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from bridge.simulator.binding import QueryError, bind_latest, bind_v1, bind_v2, parse_query_string
from bridge.simulator.faults import BodyFault
from bridge.simulator.http import JSON, TEXT, Header, Send, header, respond
from bridge.simulator.render import MetadataMissing
from bridge.simulator.simulation import Service

_ROUTE = re.compile(r"/v([^/]+)/changefeed(/latest)?/?", re.IGNORECASE)
_API_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:-([A-Za-z][A-Za-z0-9]*))?")
_VERSIONS = {(1, 0, "prerelease"): "v1.0-prerelease", (1, 0, None): "v1", (2, 0, None): "v2"}
_SUPPORTED = (b"api-supported-versions", b"1.0-prerelease, 1.0, 2.0")
_JSON_HEADERS = (JSON, _SUPPORTED)
_TEXT_HEADERS = (TEXT, _SUPPORTED)
INTERNAL_ERROR = (
    b"The server encountered an internal error. Please retry the request. "
    b"If the issue persists, please contact support."
)
UNAVAILABLE = b"The data store operation failed."
_FAULT_BODIES = {
    429: b"Too many requests. Please retry after the time given in Retry-After.",
    500: INTERNAL_ERROR,
    503: UNAVAILABLE,
}
_FORBIDDEN = b"Authorization failed."


@dataclass(frozen=True, slots=True)
class FeedRoute:
    version: str  # canonical: v1.0-prerelease, v1, v2
    latest: bool

    @property
    def label(self) -> str:
        return f"/{self.version}/changefeed" + ("/latest" if self.latest else "")


class UnsupportedVersion(Exception):
    pass


class Forbidden(Exception):
    """The caller lacks DataActions.Read."""


class ShuttingDown(Exception):
    """The server stops while the request waits for an in-flight commit."""


def match_route(path: str) -> FeedRoute | None:
    """The feed route of a path; None for 404; UnsupportedVersion for a valid but unknown one."""
    match = _ROUTE.fullmatch(path)
    if match is None:
        return None
    version = _API_VERSION.fullmatch(match[1])
    if version is None:
        return None  # not an API version at all: the route constraint does not match
    major, minor, status = version.groups()
    key = (int(major), int(minor or 0), status.lower() if status else None)
    if key not in _VERSIONS:
        raise UnsupportedVersion(match[1])
    return FeedRoute(_VERSIONS[key], match[2] is not None)


def _error_response(error: Exception) -> tuple[int, bytes]:
    """Status and plain-text body; a 500's message is generic, as the middleware makes it."""
    if isinstance(error, QueryError):
        return 400, str(error).encode()
    if isinstance(error, Forbidden):
        return 403, _FORBIDDEN
    if isinstance(error, ShuttingDown):
        return 503, UNAVAILABLE
    return 500, INTERNAL_ERROR


class FeedHandler:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: dict[str, Any], send: Send) -> None:
        stats = self.service.stats
        try:
            route = match_route(scope["path"])
        except UnsupportedVersion as exc:
            stats.request("unsupported-version", 400)
            uri = f"http://{(header(scope, b'host') or b'').decode('latin-1')}{scope['path']}"
            message = (
                f"The HTTP resource that matches the request URI '{uri}' "
                f"does not support the API version '{exc}'."
            )
            await respond(send, 400, message.encode(), _TEXT_HEADERS)
            return
        if route is None:
            stats.request("unmatched", 404)
            await respond(send, 404)
            return
        if scope["method"] != "GET":
            stats.request(route.label, 405)
            await respond(send, 405, headers=[(b"allow", b"GET")])
            return
        status, entries = await self._serve(route, scope, send)
        stats.request(route.label, status, entries)

    async def _serve(self, route: FeedRoute, scope: dict[str, Any], send: Send) -> tuple[int, int]:
        """Answer a routed request; returns (status, entries served)."""
        faults, stats = self.service.faults, self.service.stats
        delay = faults.latency()
        if delay:
            await asyncio.sleep(delay)
        decision = faults.decide()
        if decision.status is not None:
            stats.fault(str(decision.status))
            headers: list[Header] = list(_TEXT_HEADERS)
            if decision.status == 429:
                headers.append((b"retry-after", str(faults.settings.retry_after).encode()))
            await respond(send, decision.status, _FAULT_BODIES[decision.status], headers)
            return decision.status, 0
        challenge = faults.challenge(header(scope, b"authorization"))
        if challenge is not None:
            await respond(send, 401, headers=[(b"www-authenticate", challenge), _SUPPORTED])
            return 401, 0
        params = parse_query_string(scope["query_string"])
        try:
            body, entries = await self._read(route, params)
        except (QueryError, Forbidden, MetadataMissing, ShuttingDown) as exc:
            status, message = _error_response(exc)
            await respond(send, status, message, _TEXT_HEADERS)
            return status, 0
        if body is None:
            await respond(send, 204, headers=[_SUPPORTED])
            return 204, 0
        if decision.body is not None:
            stats.fault(decision.body.value)
            await self._send_broken(send, body, decision.body)
            return 200, 0
        await respond(send, 200, body, _JSON_HEADERS)
        return 200, entries

    async def _read(
        self, route: FeedRoute, params: dict[str, list[str]]
    ) -> tuple[bytes | None, int]:
        """The response body (None for an empty latest) and its entry count."""
        service = self.service
        if route.latest:
            include_metadata = bind_latest(params)
            self._check_permission()
            if route.version == "v2":
                row = service.sim.store.latest_v2()
            else:
                row, blocked = service.sim.store.latest_v1()
                while blocked:
                    await self._wait_for_commit()
                    row, blocked = service.sim.store.latest_v1()
            if row is None:
                return None, 0
            return service.sim.renderer.entry(row, include_metadata), 1
        if route.version == "v2":
            v2 = bind_v2(params)
            self._check_permission()
            rows = service.sim.store.v2_rows(v2.start, v2.end, v2.offset, v2.limit)
            return service.sim.renderer.page(rows, v2.include_metadata), len(rows)
        v1 = bind_v1(params)
        self._check_permission()
        while service.sim.store.v1_blocked(v1.offset, v1.limit):
            await self._wait_for_commit()
        rows = service.sim.store.v1_rows(v1.offset, v1.limit)
        return service.sim.renderer.page(rows, v1.include_metadata), len(rows)

    async def _wait_for_commit(self) -> None:
        """Wait for the next commit or rollback (or a reset); give up if the server stops."""
        await self.service.sim.changed()
        if self.service.sim.closed:
            raise ShuttingDown

    def _check_permission(self) -> None:
        if self.service.faults.settings.forbidden:
            raise Forbidden

    async def _send_broken(self, send: Send, body: bytes, fault: BodyFault) -> None:
        """A 200 whose JSON is cut short: a complete short message, or a dropped connection."""
        cut = self.service.faults.cut(len(body))
        length = cut if fault is BodyFault.TRUNCATE else len(body)
        headers = [*_JSON_HEADERS, (b"content-length", str(length).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # DISCONNECT returns with the body unfinished; the server then closes the connection.
        await send(
            {
                "type": "http.response.body",
                "body": body[:cut],
                "more_body": fault is BodyFault.DISCONNECT,
            }
        )
