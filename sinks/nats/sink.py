"""The NATS JetStream sink.

At open the sink connects and makes sure of its stream: created when missing (file storage,
the subject's filter, `duplicate_window`), used as it is when it exists and covers the
subject (a stream that does not stops the route with one line).

`send` publishes each message with headers `Nats-Msg-Id` (the event id), `Content-Type` and,
in `cloudevents-binary`, the `ce-*` attributes, and an event counts as delivered once the
stream's PubAck came back. The studies of a batch are published concurrently; within a study
one message at a time, each after the previous one's PubAck: JetStream drops a re-sent id
inside the duplicate window, so a study pipelined past a lost message would end up out of
order for good. A message that fails holds back the rest of its study (`Transient`, not
attempted); the route sends them again, and the duplicate window turns what had been stored
into nothing (a PubAck marked duplicate), across crashes of the bridge too.

A dropped connection fails the PubAcks still awaited (`Transient`) and the next send
connects again; a PubAck not back within `timeout` is `Transient` too. Refused credentials
stop the route; a message larger than the server's max_payload or the stream's max_msg_size
is `Permanent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from nats.aio.client import Client as NATS
from nats.errors import (
    AuthorizationError,
    ConnectionClosedError,
    MaxPayloadError,
    NoRespondersError,
    NoServersError,
)
from nats.errors import (
    Error as NatsError,
)
from nats.errors import (
    TimeoutError as NatsTimeoutError,
)
from nats.js.errors import APIError, NotFoundError

from bridge.core import redact
from bridge.core.sink import (
    DELIVERED,
    BaseSink,
    Outcome,
    Permanent,
    SinkError,
    SinkFatalError,
    Transient,
)
from sinks.nats.config import subject_problem

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

    from bridge.core.event import Event
    from sinks.nats.config import Config

log = logging.getLogger("sinks.nats")

#: Longest `check` waits for the server.
PROBE_TIMEOUT = 10.0
#: JetStream error codes of a message the stream refuses for good.
_TOO_LARGE = {10054}  # message size exceeds maximum allowed
#: Refusals of our credentials or permissions, as the server words them.
_REFUSED = ("authorization violation", "authentication", "permissions violation")


def describe(exc: BaseException) -> str:
    """The exception on one line, secrets masked, without nats-py's `nats: ` prefix."""
    return redact.describe(exc).removeprefix("nats: ")


def is_refusal(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, AuthorizationError) or any(word in text for word in _REFUSED)


def covers(pattern: str, subject: str) -> bool:
    """Whether stream subject `pattern` matches every subject `subject` (which may end in
    `>`) stands for."""
    wanted, have = subject.split("."), pattern.split(".")
    for index, token in enumerate(have):
        if token == ">":
            return index < len(wanted)
        if index >= len(wanted) or wanted[index] == ">":
            return False
        if token != "*" and token != wanted[index]:
            return False
    return len(have) == len(wanted)


class NatsSink(BaseSink):
    def __init__(self, config: Config, *, name: str) -> None:
        self.name = name
        self._config = config
        self._subject = config.subject_template
        self._where = f"nats {config.where}"
        self._client: NATS | None = None
        self._js: JetStreamContext | None = None
        self._opening = asyncio.Lock()
        self._refused: str | None = None
        self._stream_checked = False

    def __repr__(self) -> str:
        return f"NatsSink({self.name!r}, {self._where!r})"

    async def open(self) -> None:
        """Connect and make sure of the stream: an unreachable server is retried by the
        route; refused credentials or a stream that does not cover the subject stop it."""
        await self._ready()

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        if not events:
            return []
        try:
            js = await self._ready()
        except SinkFatalError:
            raise
        except SinkError as exc:  # unreachable now: the route retries these
            return [Transient(str(exc))] * len(events)
        outcomes: list[Outcome | None] = [None] * len(events)
        studies: dict[str, list[int]] = defaultdict(list)
        for index, event in enumerate(events):
            studies[event.key].append(index)
        await asyncio.gather(
            *(self._publish_study(js, events, indexes, outcomes) for indexes in studies.values())
        )
        if self._refused is not None:
            raise SinkFatalError(self._refused)
        return [outcome or Transient(f"{self._where}: not sent") for outcome in outcomes]

    @property
    def unreachable(self) -> str | None:
        client = self._client
        if client is not None and client.is_closed:
            return f"{self._where}: disconnected"
        return None

    async def check(self) -> str:
        """Connect and describe the stream (never creating it); one line."""
        client = await self._connect(min(self._config.timeout, PROBE_TIMEOUT), quiet=True)
        try:
            js = client.jetstream(timeout=min(self._config.timeout, PROBE_TIMEOUT))
            stream = self._config.stream
            try:
                info = await js.stream_info(stream)
            except NotFoundError:
                return f"{self._where}: reachable; stream {stream!r} is created at first open"
            except (APIError, NatsTimeoutError, NoRespondersError) as exc:
                raise SinkError(f"{self._where}: JetStream: {describe(exc)}") from None
            problem = self._coverage_problem(info.config.subjects or [])
            if problem is not None:
                raise SinkError(problem)
            return f"{self._where}: stream {stream!r} holds {info.state.messages} messages"
        finally:
            await _close(client)

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None:
            await _close(client)

    # -- internals -----------------------------------------------------------------------

    async def _ready(self) -> JetStreamContext:
        async with self._opening:
            if self._refused is not None:
                raise SinkFatalError(self._refused)
            if self._client is None or self._client.is_closed:
                self._client = await self._connect(self._config.timeout)
                self._js = self._client.jetstream(timeout=self._config.timeout)
            assert self._js is not None
            if not self._stream_checked:
                await self._ensure_stream(self._js)
                self._stream_checked = True
            return self._js

    async def _connect(self, timeout: float, *, quiet: bool = False) -> NATS:
        """A connected client; SinkFatalError if the server refuses the credentials,
        SinkError if it cannot be reached within `timeout`.

        nats-py's own reconnecting is off: a dropped connection closes the client, whose
        pending PubAcks fail at once (`Transient`), and the next send connects anew. (Its
        reconnect loop cannot be told to give up on refused credentials, and cancelling
        it mid-attempt leaks the attempt's socket.)"""
        client = NATS()
        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors[:] = [exc]
            if not quiet:
                log.debug("nats: %s", describe(exc), extra={"sink": self.name})

        # On a task of its own, awaited up to the deadline and its outcome taken once done:
        # what a failed attempt ends with never reads as the cancellation of the caller.
        connecting = asyncio.ensure_future(
            client.connect(
                servers=self._config.servers,
                name=f"dicom-bridge.{self.name}",
                error_cb=on_error,
                connect_timeout=max(1, math.ceil(timeout)),
                allow_reconnect=False,
                max_reconnect_attempts=1,  # each server tried twice, then NoServersError
                reconnect_time_wait=0,
                **self._config.connect_options(),
            )
        )
        try:
            done, _ = await asyncio.wait({connecting}, timeout=timeout)
            if not done:
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
                raise TimeoutError()
            if connecting.cancelled():
                raise errors[0] if errors else ConnectionError("connection cancelled")
            failure = connecting.exception()
            if failure is not None:
                raise failure
        except Exception as exc:
            await _close(client)
            if isinstance(exc, NoServersError) and errors:
                exc = errors[0]  # why the servers could not be used
            if is_refusal(exc):
                reason = f"{self._where}: credentials refused ({describe(exc)})"
                if quiet:  # `check`: one line, the route not stopped
                    raise SinkError(reason) from None
                self._refused = reason
                raise SinkFatalError(reason) from None
            why = "timed out" if isinstance(exc, asyncio.TimeoutError) else describe(exc)
            raise SinkError(f"{self._where}: cannot connect ({why})") from None
        except BaseException:
            connecting.cancel()
            await _close(client)
            raise
        return client

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        stream = self._config.stream
        try:
            try:
                info = await js.stream_info(stream)
            except NotFoundError:
                await js.add_stream(
                    name=stream,
                    subjects=self._config.stream_subjects,
                    duplicate_window=self._config.duplicate_window,
                )
                log.info("nats: created stream %s", stream, extra={"sink": self.name})
                return
        except APIError as exc:
            text = f"{self._where}: cannot create stream {stream!r} ({describe(exc)})"
            if exc.code in (400, 403) or is_refusal(exc):
                raise SinkFatalError(text) from None
            raise SinkError(text) from None
        except (NatsTimeoutError, NoRespondersError, ConnectionClosedError) as exc:
            raise SinkError(f"{self._where}: JetStream unavailable ({describe(exc)})") from None
        problem = self._coverage_problem(info.config.subjects or [])
        if problem is not None:
            raise SinkFatalError(problem)

    def _coverage_problem(self, subjects: list[str]) -> str | None:
        wanted = self._config.stream_subjects[0]
        if any(covers(pattern, wanted) for pattern in subjects):
            return None
        return (
            f"{self._where}: stream {self._config.stream!r} exists without subject "
            f"{wanted!r} (its subjects: {', '.join(subjects) or 'none'})"
        )

    async def _publish_study(
        self,
        js: JetStreamContext,
        events: Sequence[Event],
        indexes: list[int],
        outcomes: list[Outcome | None],
    ) -> None:
        """One study's events in order, each after the previous one's PubAck."""
        for position, index in enumerate(indexes):
            outcome = await self._publish(js, events[index])
            outcomes[index] = outcome
            if isinstance(outcome, Transient):
                held = Transient(
                    f"{self._where}: held back behind a failed message", attempted=False
                )
                for later in indexes[position + 1 :]:
                    outcomes[later] = held
                return

    async def _publish(self, js: JetStreamContext, event: Event) -> Outcome:
        subject = self._subject.render(event)
        problem = subject_problem(subject) if self._subject.is_template else None
        if problem is not None:
            return Permanent(f"{self._where}: {problem}")
        headers = {"Nats-Msg-Id": event.id, "Content-Type": event.content_type}
        headers.update(event.ce_headers("ce-"))
        try:
            await js.publish(subject, event.body, stream=self._config.stream, headers=headers)
        except MaxPayloadError as exc:
            return Permanent(f"{self._where}: {describe(exc)}")
        except NoRespondersError:
            self._stream_checked = False  # the stream gone? made sure of again next send
            return Transient(f"{self._where}: no stream answered for {subject!r}")
        except APIError as exc:
            if is_refusal(exc):
                self._refused = f"{self._where}: not allowed ({describe(exc)})"
                return Transient(self._refused)
            if exc.err_code in _TOO_LARGE:
                return Permanent(f"{self._where}: {describe(exc)}")
            return Transient(f"{self._where}: {describe(exc)}")
        except (NatsTimeoutError, ConnectionClosedError, NatsError, OSError) as exc:
            why = describe(exc) if not isinstance(exc, NatsTimeoutError) else "no PubAck in time"
            return Transient(f"{self._where}: {why}")
        return DELIVERED


async def _close(client: NATS) -> None:
    """Close `client`, its socket included, within a few seconds whatever state it is in."""
    await _settle(client.close(), 5)
    # nats-py marks a client whose first connect was refused closed without closing its
    # socket (close() then returns at once): close the transport itself.
    transport = getattr(client, "_transport", None)
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.close()
        await _settle(transport.wait_closed(), 2)


async def _settle(awaitable: Awaitable[object], timeout: float) -> None:
    """Await `awaitable` on a task of its own, at most `timeout`, ignoring its outcome: the
    streams of a failed TLS handshake end their close with a CancelledError that is not
    the caller's."""
    task = asyncio.ensure_future(awaitable)
    await asyncio.wait({task}, timeout=timeout)
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()  # retrieved: never "exception was never retrieved"


def create(config: Config, *, name: str) -> NatsSink:
    return NatsSink(config, name=name)
