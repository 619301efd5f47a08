"""The Azure Service Bus sink, on the azure-servicebus async client.

One sender link per sink; sends are serialised on it (the SDK's sender is not safe for
concurrent sends), so the route's concurrent batches queue here in the order they came.
Each route batch is packed into as few Service Bus batches as the entity's batch limit
allows (`create_message_batch`, at most 4,500 messages), sent one after the other in feed
order; at the first failure the rest of the route batch gets the same `Transient` outcome
(and is not sent, so nothing overtakes the failed part). An event too large for any batch
is sent alone (Premium takes larger single messages than batches). A batch the broker
refuses as too large is split in halves and retried; a single message it refuses is
`Permanent`, with the broker's reason.

The SDK's own retries are off: every retry goes through the route's backoff (the `retry`
settings), which never advances the cursor, so there is one retry policy to tune. A send
that fails leaves the SDK to reconnect at the next one; a send that hangs past
`send_timeout` discards the sender, and the next send opens a new one.

Message mapping: `message_id` = the event id (deterministic: duplicate detection drops
re-sends within its window), `session_id` = StudyInstanceUID with `sessions`, `subject` =
the event type, `content_type` = the body's media type, optional `time_to_live`; in
`cloudevents-binary` the attributes travel as `cloudEvents_*` application properties
(CloudEvents AMQP binding).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import MessageSizeExceededError

from bridge.core.azure import azure_credential
from bridge.core.sink import (
    DELIVERED,
    BaseSink,
    Outcome,
    Permanent,
    SinkError,
    SinkFatalError,
    Transient,
)
from sinks.servicebus import _errors

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusSender

    from bridge.core.event import Event
    from sinks.servicebus.config import Config

log = logging.getLogger(__name__)

#: CloudEvents AMQP binding: application-property prefix of binary-mode attributes.
CE_PREFIX = "cloudEvents_"
#: `check` answers within this, whatever `send_timeout` is (the CLI waits 15 s per probe).
CHECK_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
#: Service Bus refuses a batch of more messages than this, whatever their size.
MAX_BATCH_MESSAGES = 4500
#: Bytes of the size limit kept free for what the SDK does not count in a batch: its
#: envelope repeats the first message's properties (ids, subject, content type).
ENVELOPE_HEADROOM = 512


class Item(NamedTuple):
    batch_index: int  # position in the route's batch (`index` would shadow tuple.index)
    message: ServiceBusMessage
    size: int  # of the body


class Group(NamedTuple):
    """Items sent in one transfer: their batch as packed (encoding is the costly part, so it
    is done once), None after a split (rebuilt when sent), or one message sent alone."""

    items: list[Item]
    batch: ServiceBusMessageBatch | None = None


class ServiceBusSink(BaseSink):
    def __init__(self, config: Config, *, name: str) -> None:
        self.name = name
        self._config = config
        secret = config.connection_string.get_secret_value() if config.connection_string else None
        self.where = (
            f"servicebus {config.entity_kind} {config.entity!r} on "
            f"{config.fully_qualified_namespace or _endpoint_host(secret)}"
        )
        self._client: ServiceBusClient | None = None
        self._secrets: tuple[str | None, ...] = ()  # what the client was created with
        self._credential: Any = None
        self._sender: ServiceBusSender | None = None
        self._link_limit = self._limit = 0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ServiceBusSink(name={self.name!r}, {self.where})"

    # -- the Sink protocol ----------------------------------------------------------------

    async def open(self) -> None:
        """Attach the sender now, so that a bad credential or a missing entity stops the
        route before anything is read; other failures are retried by the route."""
        async with self._lock:
            await self._connected(self._config.send_timeout)

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(events)
        items: list[Item] = []
        for index, event in enumerate(events):
            try:
                items.append(Item(index, to_message(event, self._config), len(event.body)))
            except ValueError as exc:  # e.g. an id longer than Service Bus allows
                outcomes[index] = Permanent(f"not a valid Service Bus message: {exc}")
        if items:
            async with self._lock:
                await self._deliver(items, outcomes)
        return [outcome or DELIVERED for outcome in outcomes]

    async def check(self) -> str:
        """Attach a sender (within `CHECK_TIMEOUT`) and describe the entity's batch limit."""
        try:
            async with self._lock:
                await self._connected(min(self._config.send_timeout, CHECK_TIMEOUT))
                limit = self._link_limit
        finally:
            await self.close()
        return f"{self.where}: sender attached, the entity takes batches up to {limit} bytes"

    async def close(self) -> None:
        await self._drop_sender()
        for resource in (self._client, self._credential):
            if resource is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(resource.close(), CLOSE_TIMEOUT)
        self._client = self._credential = None

    # -- connecting -----------------------------------------------------------------------

    async def _connected(self, timeout: float) -> ServiceBusSender:
        """The open sender, attached first if needed (its link tells the batch limit).
        Raises SinkFatalError, or SinkError for what a retry may fix."""
        if self._client is not None and self._config.secret_values() != self._secrets:
            log.info("%s: a secret file changed; connecting again with it", self.where)
            await self.close()
        if self._sender is not None:
            return self._sender
        try:
            if self._client is None:
                self._secrets = self._config.secret_values()
                self._client = self._new_client()
            config = self._config
            if config.queue:
                sender = self._client.get_queue_sender(config.queue)
            else:
                sender = self._client.get_topic_sender(config.entity)
            try:
                async with asyncio.timeout(timeout):
                    probe = await sender.create_message_batch()  # attaches the link
            except BaseException:
                await _close_quietly(sender)
                raise
        except TimeoutError:
            raise SinkError(f"{self.where}: no answer within {timeout:g}s") from None
        except Exception as exc:
            if _errors.is_fatal(exc):
                raise _errors.fatal(exc, self.where) from None
            raise SinkError(f"{self.where}: {_errors.describe(exc)}") from None
        self._link_limit = probe.max_size_in_bytes
        limit = min(self._config.max_batch_bytes or self._link_limit, self._link_limit)
        self._limit = max(limit - ENVELOPE_HEADROOM, limit // 2)
        self._sender = sender
        return sender

    def _new_client(self) -> ServiceBusClient:
        config = self._config
        options: dict[str, Any] = {"retry_total": 0}  # the route retries, with its backoff
        if config.connection_string is not None:
            return ServiceBusClient.from_connection_string(config.connection_text(), **options)
        assert config.fully_qualified_namespace is not None  # the config requires one of the two
        self._credential = azure_credential(**config.credential_options())
        return ServiceBusClient(config.fully_qualified_namespace, self._credential, **options)

    async def _drop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            await _close_quietly(sender)

    # -- sending --------------------------------------------------------------------------

    async def _deliver(self, items: list[Item], outcomes: list[Outcome | None]) -> None:
        """Send `items` in order, filling `outcomes`; at the first failure, every item not
        yet delivered gets that failure's outcome (those after the failed batch as not
        attempted: a retry budget counts from an event's first real send)."""
        trying = items  # what a failure now was an attempt at
        try:
            sender = await self._connected(self._config.send_timeout)
            groups = await self._pack(sender, items)
            while groups:
                group = groups.pop(0)
                trying = group.items
                try:
                    await self._send_group(sender, group)
                except MessageSizeExceededError as exc:
                    groups[:0] = self._split(group.items, exc, outcomes)
                    continue
                for item in group.items:
                    outcomes[item.batch_index] = DELIVERED
        except SinkFatalError:
            raise
        except SinkError as exc:  # could not connect
            self._fail_rest(outcomes, items, trying, Transient(str(exc)))
        except Exception as exc:
            if _errors.is_fatal(exc):
                raise _errors.fatal(exc, self.where) from None
            self._fail_rest(outcomes, items, trying, self._transient(exc))

    async def _pack(self, sender: ServiceBusSender, items: list[Item]) -> list[Group]:
        """Items in order, grouped into batches within the size limit and the service's
        message count limit. An item too large for any batch is a group of its own: sent
        alone, it may still fit the entity's (larger, on Premium) single-message limit."""
        groups: list[Group] = []
        group: list[Item] = []
        batch = await sender.create_message_batch(self._limit)
        for item in items:
            if len(group) < MAX_BATCH_MESSAGES and _added(batch, item.message):
                group.append(item)
                continue
            if group:
                groups.append(Group(group, batch))
                group, batch = [], await sender.create_message_batch(self._limit)
            if _added(batch, item.message):
                group.append(item)
            else:
                groups.append(Group([item]))
        if group:
            groups.append(Group(group, batch))
        return groups

    async def _send_group(self, sender: ServiceBusSender, group: Group) -> None:
        payload: Any = group.batch
        if payload is None and len(group.items) == 1:
            payload = group.items[0].message
        elif payload is None:
            payload = await sender.create_message_batch(self._limit)
            for item in group.items:
                payload.add_message(item.message)
        timeout = self._config.send_timeout
        try:
            # The SDK's timeout covers the send; ours also covers a send it never ends.
            async with asyncio.timeout(timeout + 1):
                await sender.send_messages(payload, timeout=timeout)
        except TimeoutError:
            await self._drop_sender()
            raise TimeoutError(f"no acknowledgement within {timeout:g}s") from None

    def _split(
        self, group: list[Item], exc: MessageSizeExceededError, outcomes: list[Outcome | None]
    ) -> list[Group]:
        """The broker refused `group` as too large: halves to send instead, or, for a
        single message, its `Permanent` outcome."""
        if len(group) == 1:
            [item] = group
            reason = _errors.describe(exc)
            outcomes[item.batch_index] = Permanent(
                f"too large for Service Bus ({item.size}-byte body): {reason}"
            )
            return []
        log.info(
            "sink %s: Service Bus refused a batch of %d messages as too large; splitting it",
            self.name,
            len(group),
        )
        middle = len(group) // 2
        return [Group(group[:middle]), Group(group[middle:])]

    def _transient(self, exc: BaseException) -> Transient:
        outcome = _errors.transient(exc, self._config.quota_retry_after)
        if _errors.is_full(exc):
            log.warning(
                "sink %s: %s is full or disabled (%s); consumers or an operator must make "
                "room, retrying in %gs at the earliest",
                self.name,
                self.where,
                outcome.reason,
                self._config.quota_retry_after,
            )
        return outcome

    @staticmethod
    def _fail_rest(
        outcomes: list[Outcome | None], items: list[Item], tried: list[Item], outcome: Transient
    ) -> None:
        held_back = dataclasses.replace(outcome, attempted=False)
        attempted = {item.batch_index for item in tried}
        for item in items:
            if outcomes[item.batch_index] is None:
                outcomes[item.batch_index] = outcome if item.batch_index in attempted else held_back


def to_message(event: Event, config: Config) -> ServiceBusMessage:
    """The Service Bus message of one event (raises ValueError if the SDK refuses a field)."""
    ttl = config.time_to_live
    return ServiceBusMessage(
        event.body,
        message_id=event.id,
        session_id=event.key if config.sessions else None,
        subject=event.type,
        content_type=event.content_type,
        time_to_live=datetime.timedelta(seconds=ttl) if ttl else None,
        application_properties=dict(event.ce_headers(CE_PREFIX)) or None,
    )


def _added(batch: Any, message: ServiceBusMessage) -> bool:
    try:
        batch.add_message(message)
    except MessageSizeExceededError:
        return False
    return True


async def _close_quietly(sender: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(sender.close(), CLOSE_TIMEOUT)


def _settings(connection_string: str | None) -> dict[str, str]:
    if not connection_string:
        return {}
    pairs = (part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return {key.strip().lower(): value.strip() for key, value in pairs}


def _endpoint_host(connection_string: str | None) -> str:
    endpoint = _settings(connection_string).get("endpoint", "")
    return endpoint.split("://", 1)[-1].rstrip("/")


def create(config: Config, *, name: str) -> ServiceBusSink:
    return ServiceBusSink(config, name=name)
