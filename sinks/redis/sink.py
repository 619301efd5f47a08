"""The Redis Streams sink.

`send` appends a batch with one pipeline (`transaction=False`: one round trip, the
commands run in order on one connection), an `XADD <stream> [MAXLEN ~ n] * id <event id>
event <body>` per event, and an event counts as delivered once its XADD answered with the
entry's id. Redis writes the entry before answering; how durable that is (AOF fsync,
replicas) is the server's configuration, as for any Redis client.

Failures:
- the connection (refused, reset, timed out): every event of the send is `Transient`, the
  route retries it; an XADD that had been applied before the reply was lost is appended
  again (at-least-once: consumers de-duplicate on the `id` field);
- credentials refused (WRONGPASS, NOAUTH) or a command the ACL user may not run (NOPERM):
  `SinkFatalError`, every event would fail the same way;
- a key of another type (WRONGTYPE): fatal for a fixed stream, `Permanent` for one
  rendered from a template (that event's stream only);
- a server that cannot take writes now (OOM, LOADING, BUSY, READONLY, MASTERDOWN,
  TRYAGAIN, MISCONF): `Transient`; any other error reply: `Permanent`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    RedisError,
    ResponseError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from bridge.core.redact import describe
from bridge.core.sink import (
    DELIVERED,
    BaseSink,
    Outcome,
    Permanent,
    SinkError,
    SinkFatalError,
    Transient,
)

if TYPE_CHECKING:
    from bridge.core.event import Event
    from sinks.redis.config import Config

log = logging.getLogger("sinks.redis")

#: Longest `check` waits for the server.
PROBE_TIMEOUT = 10.0
#: Error replies that say the server cannot take writes right now.
_BUSY = ("OOM", "LOADING", "BUSY", "READONLY", "MASTERDOWN", "TRYAGAIN", "MISCONF", "CLUSTERDOWN")
_REFUSED = ("NOPERM", "NOAUTH", "WRONGPASS")


class RedisSink(BaseSink):
    def __init__(self, config: Config, *, name: str) -> None:
        self.name = name
        self._config = config
        self._stream = config.stream_template
        self._where = f"redis {config.where}"
        self._trim: dict[str, Any] = (
            {} if config.maxlen is None else {"maxlen": config.maxlen, "approximate": True}
        )
        self._client: Redis | None = None

    def __repr__(self) -> str:
        return f"RedisSink({self.name!r}, {self._where!r})"

    async def open(self) -> None:
        """Connect and authenticate: an unreachable server is retried by the route,
        refused credentials stop it."""
        client = self._ready_client()
        try:
            await client.ping()
        except BaseException as exc:
            raise self._open_error(exc) from None

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        if not events:
            return []
        pipeline = self._ready_client().pipeline(transaction=False)
        streams = [self._stream.render(event) for event in events]
        for stream, event in zip(streams, events, strict=True):
            pipeline.xadd(stream, {"id": event.id, "event": event.body}, **self._trim)
        try:
            replies = await pipeline.execute(raise_on_error=False)
        except AuthenticationError as exc:
            raise SinkFatalError(f"{self._where}: credentials refused ({describe(exc)})") from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            reason = f"{self._where}: {describe(exc)}"
            return [Transient(reason)] * len(events)
        except ResponseError as exc:  # the pipeline as a whole refused (e.g. AUTH on connect)
            self._raise_if_refused(exc)
            return [Transient(f"{self._where}: {describe(exc)}")] * len(events)
        return [
            self._outcome(reply, stream) for reply, stream in zip(replies, streams, strict=True)
        ]

    async def check(self) -> str:
        """PING the server and, for a fixed stream, tell what the key holds; one line."""
        options = self._config.client_options()
        timeout = min(self._config.timeout, PROBE_TIMEOUT)
        options.update(socket_connect_timeout=timeout, socket_timeout=timeout)
        client = self._new_client(options)
        try:
            await client.ping()
            if self._stream.is_template:
                return f"{self._where}: reachable (stream template not checked)"
            stream = self._stream.value
            kind = await client.type(stream)
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            if kind == "none":
                return f"{self._where}: reachable; stream {stream!r} is created by the first XADD"
            if kind != "stream":
                raise SinkError(f"{self._where}: key {stream!r} holds a {kind}, not a stream")
            length = await client.xlen(stream)
            return f"{self._where}: stream {stream!r} holds {length} entries"
        except SinkError:
            raise
        except BaseException as exc:
            error = self._open_error(exc)
            raise SinkError(str(error)) from None  # unreachable or refused: one line
        finally:
            await client.aclose()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- internals -----------------------------------------------------------------------

    def _new_client(self, options: dict[str, Any]) -> Redis:
        return Redis.from_url(
            self._config.url,
            retry=Retry(NoBackoff(), 1),  # one reconnect for a stale pooled connection
            client_name=f"dicom-bridge.{self.name}",
            **options,
        )

    def _ready_client(self) -> Redis:
        if self._client is None:
            self._client = self._new_client(self._config.client_options())
        return self._client

    def _open_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            return exc
        if isinstance(exc, AuthenticationError | NoPermissionError) or (
            isinstance(exc, ResponseError) and str(exc).startswith(_REFUSED)
        ):
            return SinkFatalError(f"{self._where}: credentials refused ({describe(exc)})")
        if isinstance(exc, RedisError | OSError):
            return SinkError(f"{self._where}: {describe(exc)}")
        return exc

    def _raise_if_refused(self, exc: ResponseError) -> None:
        if isinstance(exc, NoPermissionError) or str(exc).startswith(_REFUSED):
            raise SinkFatalError(f"{self._where}: not allowed ({describe(exc)})")

    def _outcome(self, reply: object, stream: str) -> Outcome:
        if not isinstance(reply, BaseException):
            return DELIVERED
        if isinstance(reply, RedisConnectionError | RedisTimeoutError):
            return Transient(f"{self._where}: {describe(reply)}")
        if not isinstance(reply, ResponseError):
            return Transient(f"{self._where}: {describe(reply)}")
        self._raise_if_refused(reply)
        text = str(reply)
        if text.startswith("WRONGTYPE"):
            reason = f"{self._where}: key {stream!r} holds another type than a stream"
            if not self._stream.is_template:
                raise SinkFatalError(reason)
            return Permanent(reason)
        if text.startswith(_BUSY):
            return Transient(f"{self._where}: {describe(reply)}")
        return Permanent(f"{self._where}: XADD to {stream!r} refused ({describe(reply)})")


def create(config: Config, *, name: str) -> RedisSink:
    return RedisSink(config, name=name)
