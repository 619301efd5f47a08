"""The RabbitMQ sink.

At open the sink connects (one connection, one channel in confirm mode) and declares its
exchange: topic, durable. An existing exchange of that kind is used; one of another type or
durability stops the route with one line (the broker's PRECONDITION_FAILED), and the
broker's own `amq.*` exchanges are only checked to exist.

`send` publishes every event of a batch at once, on the one channel (the broker keeps a
channel's order, so each study's messages reach a queue in feed order), and an event counts
as delivered once its publisher confirm (Basic.Ack) came back. Messages are persistent
(delivery mode 2), `message_id` = the event id, `content_type` the body's; in
`cloudevents-binary` the attributes travel as `cloudEvents:*` headers (the CloudEvents AMQP
binding's application properties). With `mandatory` (the default) a message no queue is
bound for is returned: `Permanent`, dead-lettered with the reason.

Failures: a lost connection or channel, a Nack or a confirm not back within `timeout` is
`Transient` (the next send connects again; a message confirmed late may then be held twice:
at-least-once, consumers de-duplicate on `message_id`); refused credentials, a vhost or
exchange we may not use stop the route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aio_pika
import aiormq.exceptions as amqp
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

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
from sinks.rabbitmq.config import routing_key_problem

if TYPE_CHECKING:
    from bridge.core.event import Event
    from sinks.rabbitmq.config import Config

log = logging.getLogger("sinks.rabbitmq")

#: Longest `check` waits for the broker.
PROBE_TIMEOUT = 10.0
#: The CloudEvents AMQP binding's prefix of attributes as application properties.
CE_PREFIX = "cloudEvents:"
#: Refusals that every message would meet: the route stops.
_REFUSED = (
    amqp.AuthenticationError,
    amqp.ProbableAuthenticationError,
    amqp.ConnectionNotAllowed,
    amqp.ChannelAccessRefused,
)


class RabbitMqSink(BaseSink):
    def __init__(self, config: Config, *, name: str) -> None:
        self.name = name
        self._config = config
        self._routing_key = config.routing_key_template
        self._where = f"rabbitmq {config.where}"
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RabbitMqSink({self.name!r}, {self._where!r})"

    async def open(self) -> None:
        """Connect and declare the exchange: an unreachable broker is retried by the route;
        refused credentials or a mismatched exchange stop it."""
        await self._ready()

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        if not events:
            return []
        exchange = await self._ready()
        results = await asyncio.gather(
            *(self._publish(exchange, event) for event in events), return_exceptions=True
        )
        outcomes = [self._outcome(result) for result in results]
        if any(isinstance(outcome, Transient) for outcome in outcomes):
            await self._drop_if_broken()
        return outcomes

    @property
    def unreachable(self) -> str | None:
        connection = self._connection
        if connection is not None and not _alive(connection):
            return f"{self._where}: connection lost"
        return None

    async def check(self) -> str:
        """Connect and look for the exchange (never declaring it); one line."""
        timeout = min(self._config.timeout, PROBE_TIMEOUT)
        connection = await self._connect(timeout, quiet=True)
        try:
            channel = await connection.channel()
            try:
                await channel.get_exchange(self._config.exchange, ensure=True)
            except amqp.ChannelNotFoundEntity:
                return f"{self._where}: reachable; the exchange is declared at first open"
            return f"{self._where}: the exchange exists"
        except (TimeoutError, amqp.AMQPError, OSError) as exc:
            raise SinkError(f"{self._where}: {describe(exc)}") from None
        finally:
            await _close(connection)

    async def close(self) -> None:
        async with self._opening:
            connection, self._connection = self._connection, None
            self._channel = self._exchange = None
            if connection is not None:
                await _close(connection)

    # -- internals -----------------------------------------------------------------------

    async def _ready(self) -> AbstractExchange:
        async with self._opening:
            if self._connection is not None and not _alive(self._connection):
                await self._forget()
            if self._connection is None:
                self._connection = await self._connect(self._config.timeout)
            if self._channel is None or self._channel.is_closed or self._exchange is None:
                self._exchange = None
                self._channel = await self._open_channel(self._connection)
                self._exchange = await self._declare(self._channel)
            return self._exchange

    async def _connect(self, timeout: float, *, quiet: bool = False) -> AbstractConnection:
        options: dict[str, Any] = {}
        if self._config.uses_tls:
            try:
                options["ssl_context"] = self._config.tls.context()
            except ValueError as exc:
                raise SinkFatalError(f"{self._where}: {exc}") from None
        try:
            return await asyncio.wait_for(
                aio_pika.connect(
                    self._config.connection_url(),
                    timeout=timeout,
                    client_properties={"connection_name": f"dicom-bridge.{self.name}"},
                    **options,
                ),
                timeout,
            )
        except _REFUSED as exc:
            reason = f"{self._where}: credentials or vhost refused ({describe(exc)})"
            raise (SinkError if quiet else SinkFatalError)(reason) from None
        except (TimeoutError, amqp.AMQPError, OSError) as exc:
            why = describe(exc) if not isinstance(exc, asyncio.TimeoutError) else "timed out"
            raise SinkError(f"{self._where}: cannot connect ({why})") from None

    async def _open_channel(self, connection: AbstractConnection) -> AbstractChannel:
        try:
            return await connection.channel(publisher_confirms=True, on_return_raises=True)
        except (TimeoutError, amqp.AMQPError, OSError) as exc:
            await self._forget()
            raise SinkError(f"{self._where}: cannot open a channel ({describe(exc)})") from None

    async def _declare(self, channel: AbstractChannel) -> AbstractExchange:
        name = self._config.exchange
        try:
            if self._config.predeclared:
                return await channel.get_exchange(name, ensure=True)
            return await channel.declare_exchange(
                name, aio_pika.ExchangeType.TOPIC, durable=True, timeout=self._config.timeout
            )
        except amqp.ChannelPreconditionFailed as exc:
            raise SinkFatalError(
                f"{self._where}: the exchange exists but is not a durable topic exchange "
                f"({describe(exc)})"
            ) from None
        except (amqp.ChannelAccessRefused, amqp.ChannelNotFoundEntity) as exc:
            raise SinkFatalError(
                f"{self._where}: cannot use the exchange ({describe(exc)})"
            ) from None
        except (TimeoutError, amqp.AMQPError, OSError) as exc:
            await self._forget()
            raise SinkError(
                f"{self._where}: cannot declare the exchange ({describe(exc)})"
            ) from None

    async def _publish(self, exchange: AbstractExchange, event: Event) -> object:
        key = self._routing_key.render(event)
        problem = routing_key_problem(key) if self._routing_key.is_template else None
        if problem is not None:
            return Permanent(f"{self._where}: {problem}")
        message = aio_pika.Message(
            event.body,
            content_type=event.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.id,
            headers=dict(event.ce_headers(CE_PREFIX)) or None,
        )
        return await exchange.publish(
            message, key, mandatory=self._config.mandatory, timeout=self._config.timeout
        )

    def _outcome(self, result: object) -> Outcome:
        if isinstance(result, Permanent):
            return result
        if not isinstance(result, BaseException):
            return DELIVERED
        if isinstance(result, amqp.PublishError):  # returned: no queue bound
            frame = getattr(result, "frame", None)
            text = getattr(frame, "reply_text", None) or "returned"
            key = getattr(frame, "routing_key", "")
            return Permanent(f"{self._where}: unroutable, routing key {key!r} ({text})")
        if isinstance(result, amqp.DeliveryError):
            return Transient(f"{self._where}: the broker refused the message (nack)")
        if isinstance(result, amqp.ChannelAccessRefused):
            raise SinkFatalError(f"{self._where}: not allowed to publish ({describe(result)})")
        if isinstance(result, asyncio.TimeoutError):
            return Transient(f"{self._where}: no confirm in time")
        if isinstance(result, asyncio.CancelledError):
            raise result
        if isinstance(result, amqp.AMQPError | OSError | RuntimeError):
            return Transient(f"{self._where}: {describe(result)}")
        raise result

    async def _drop_if_broken(self) -> None:
        """After a failure: a connection or channel that is gone is made anew next send."""
        async with self._opening:
            broken = self._connection is not None and not _alive(self._connection)
            if broken or (self._channel is not None and self._channel.is_closed):
                await self._forget()

    async def _forget(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None:
            await _close(connection)


def _alive(connection: AbstractConnection) -> bool:
    """aio-pika's `is_closed` stays False when the broker or the network dropped the
    connection (only `close()` sets it); `connected` is cleared then."""
    return not connection.is_closed and connection.connected.is_set()


async def _close(connection: AbstractConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), 5)


def create(config: Config, *, name: str) -> RabbitMqSink:
    return RabbitMqSink(config, name=name)
