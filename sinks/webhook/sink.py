"""The webhook sink: POSTs events with httpx, signed per the Standard Webhooks spec.

Per-study order inside a batch comes from `request.plan` (lanes); the sink-wide
`concurrency` semaphore bounds the requests in flight across all of the route's batches
and equals the connection pool size, so no request waits for a connection after taking
its slot. After a transient failure in a lane, the lane's later requests for the same
studies are reported Transient ("not sent after: <the failure>") instead of being sent:
the route re-sends them after the failed one anyway, so sending them now would only make
duplicates. A fatal answer (401, 403, 410) cancels the other lanes and refuses every
later send: the route stops with that one line, its cursor kept.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from bridge.core import __version__
from bridge.core.sink import BaseSink, Outcome, SinkError, SinkFatalError, Transient
from sinks.webhook.answer import REQUEST_HEADERS, exchange
from sinks.webhook.outcome import FATAL_HINTS, classify, display_url, failure
from sinks.webhook.request import Request, plan
from sinks.webhook.signing import Signer

if TYPE_CHECKING:
    from bridge.core.event import Event
    from sinks.webhook.config import Config

CHECK_DEADLINE = 10.0  # seconds; `dicom-bridge check` allows each sink 15
UNSENT = Transient("not sent", attempted=False)  # placeholder until a lane decides


class WebhookSink(BaseSink):
    def __init__(
        self, config: Config, *, name: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.name = name
        self._config = config
        self._where = f"webhook {display_url(config.url)}"
        self._signer = Signer(config)
        self._slots = asyncio.Semaphore(config.concurrency)
        self._transport = transport  # tests inject httpx.MockTransport
        self._client: httpx.AsyncClient | None = None
        self._fatal: SinkFatalError | None = None

    def __repr__(self) -> str:
        return f"WebhookSink({self.name!r}, {self._where!r})"

    async def open(self) -> None:
        if self._client is None:
            self._client = await self._new_client()

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        if self._fatal is not None:
            raise SinkFatalError(str(self._fatal))
        if not events:
            return []
        await self.open()
        outcomes: list[Outcome] = [UNSENT] * len(events)
        lanes = plan(events, self._config.batch)
        try:
            await self._run(lanes, outcomes)
        except SinkFatalError as exc:
            self._fatal = exc
            raise
        return outcomes

    async def check(self) -> str:
        """One OPTIONS request (the CloudEvents webhook handshake method): any HTTP answer
        means reachable, except 401/403/410, which would stop the route at its first send."""
        client = self._client or await self._new_client()
        deadline = min(self._config.timeout, CHECK_DEADLINE)
        try:
            async with asyncio.timeout(deadline):
                response, _ = await exchange(
                    client, "OPTIONS", self._config.url, headers=self._signer.credentials()
                )
        except (TimeoutError, httpx.TimeoutException):
            raise SinkError(f"{self._where}: no answer within {deadline:g}s") from None
        except httpx.RequestError as exc:
            raise SinkError(f"{failure(exc, self._where, deadline).reason}") from None
        finally:
            if client is not self._client:
                await client.aclose()
        status = f"{response.status_code} {response.reason_phrase}".rstrip()
        if response.status_code in FATAL_HINTS:
            hint = FATAL_HINTS[response.status_code]
            raise SinkError(f"{self._where}: reachable, but OPTIONS answered {status}: {hint}")
        return f"{self._where}: reachable (OPTIONS answered {status})"

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- delivery -------------------------------------------------------------------------

    async def _run(self, lanes: list[list[Request]], outcomes: list[Outcome]) -> None:
        if len(lanes) == 1:
            await self._run_lane(lanes[0], outcomes)
            return
        fatal: SinkFatalError | ExceptionGroup[SinkFatalError] | None = None
        try:
            async with asyncio.TaskGroup() as group:
                for lane in lanes:
                    group.create_task(self._run_lane(lane, outcomes))
        except* SinkFatalError as failed:  # the group cancelled the other lanes
            fatal = failed.exceptions[0]
        if fatal is not None:
            raise fatal

    async def _run_lane(self, lane: list[Request], outcomes: list[Outcome]) -> None:
        held: set[str] = set()  # studies with an undelivered event earlier in the lane
        cause: Transient | None = None  # the lane's last failure
        for request in lane:
            if cause is not None and not held.isdisjoint(request.studies):
                # Its reason and Retry-After reach the route's log and delay.
                outcome: Outcome = Transient(
                    f"not sent after: {cause.reason}", cause.retry_after, attempted=False
                )
            else:
                outcome = await self._post(request)
                if isinstance(outcome, Transient):
                    cause = outcome
            for index in request.indexes:
                outcomes[index] = outcome
            if isinstance(outcome, Transient):
                held |= request.studies

    async def _post(self, request: Request) -> Outcome:
        assert self._client is not None
        timeout = self._config.timeout
        async with self._slots:
            # Signed once the slot is taken: the timestamp is this attempt's.
            headers = request.headers | self._signer.headers(request.msg_id, request.body)
            try:
                async with asyncio.timeout(timeout):
                    response, body = await exchange(
                        self._client,
                        "POST",
                        self._config.url,
                        content=request.body,
                        headers=headers,
                    )
            except (TimeoutError, httpx.RequestError) as exc:
                return failure(exc, self._where, timeout)
        return classify(response, body, self._where)

    # -- connections ----------------------------------------------------------------------

    async def _new_client(self) -> httpx.AsyncClient:
        config = self._config
        tls = await asyncio.to_thread(self._tls_context)  # reads certificate files
        return httpx.AsyncClient(
            headers={"user-agent": f"dicom-changefeed-bridge/{__version__}", **REQUEST_HEADERS},
            timeout=config.timeout,
            limits=httpx.Limits(
                max_connections=config.concurrency, max_keepalive_connections=config.concurrency
            ),
            verify=tls,
            http2=config.http2,
            follow_redirects=False,
            transport=self._transport,
        )

    def _tls_context(self) -> ssl.SSLContext:
        tls = self._config.tls
        try:
            if tls.ca_file is not None:
                context = ssl.create_default_context(cafile=tls.ca_file)
            else:  # certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set
                context = httpx.create_ssl_context(verify=tls.verify)
            if tls.cert_file is not None:
                context.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(f"{self._where}: cannot load the TLS files: {exc}") from None
        return context


def create(config: Config, *, name: str) -> WebhookSink:
    return WebhookSink(config, name=name)
