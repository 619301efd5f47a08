"""The Azure Service Bus sink, on the azure-servicebus async client.

Batches (the default): one sender link per sink; sends are serialised on it (the SDK's
sender is not safe for concurrent sends), so the route's concurrent batches queue here in
the order they came. Each route batch is packed into as few Service Bus batches as the
entity's batch limit allows (`create_message_batch`, at most 4,500 messages), sent one
after the other in feed order; at the first failure the rest of the route batch gets the
same `Transient` outcome (and is not sent, so nothing overtakes the failed part). An event
too large for any batch is sent alone (Premium takes larger single messages than batches).
A batch the broker refuses as too large is split in halves and retried; a single message
it refuses is `Permanent`, with the broker's reason.

One message per transfer (`batching: false`, or from the first batch a partitioned entity
with duplicate detection refuses: Service Bus does not implement batches of distinct
messages there): each study's messages one after the other on a link of its own, up to
`max_in_flight` studies at once (`_links`); a failure holds back the rest of its study only.

The SDK's own retries are off: every retry goes through the route's backoff (the `retry`
settings), which never advances the cursor, so there is one retry policy to tune. A send
that fails leaves the SDK to reconnect at the next one; a send that hangs past
`send_timeout` discards its link, and the next send opens a new one.

Message mapping: `message_id` = the event id (deterministic: duplicate detection drops
re-sends within its window), `session_id` = StudyInstanceUID with `sessions`, `subject` =
the event type, `content_type` = the body's media type, optional `time_to_live`; in
`cloudevents-binary` the attributes travel as `cloudEvents_*` application properties
(CloudEvents AMQP binding).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from azure.servicebus import ServiceBusMessage
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
from sinks.servicebus._batches import Item, fail_rest, halves, pack, payload
from sinks.servicebus._links import Links, close_quietly

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusSender

    from bridge.core.event import Event
    from sinks.servicebus.config import Config

log = logging.getLogger(__name__)

#: CloudEvents AMQP binding: application-property prefix of binary-mode attributes.
CE_PREFIX = "cloudEvents_"
#: `check` answers within this, whatever `send_timeout` is (the CLI waits 15 s per probe).
CHECK_TIMEOUT = 10.0
#: Service Bus refuses a batch of more messages than this, whatever their size.
MAX_BATCH_MESSAGES = 4500
#: Bytes of the size limit kept free for what the SDK does not count in a batch: its
#: envelope repeats the first message's properties (ids, subject, content type).
ENVELOPE_HEADROOM = 512


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
        self._sender: ServiceBusSender | None = None  # the batch link
        self._links = Links(config.max_in_flight, lambda: self._attach(config.send_timeout))
        self._singly = not config.batching
        self._link_limit = self._limit = 0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ServiceBusSink(name={self.name!r}, {self.where})"

    # -- the Sink protocol ----------------------------------------------------------------

    async def open(self) -> None:
        """Attach a sender now, so that a bad credential or a missing entity stops the
        route before anything is read; other failures are retried by the route."""
        async with self._lock:
            await self._connected(self._config.send_timeout)
            if self._singly:
                self._hand_over_the_batch_link()

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(events)
        items: list[Item] = []
        for index, event in enumerate(events):
            try:
                message = to_message(event, self._config)
            except ValueError as exc:  # e.g. an id longer than Service Bus allows
                outcomes[index] = Permanent(f"not a valid Service Bus message: {exc}")
                continue
            items.append(Item(index, message, len(event.body), event.key))
        if items and not self._singly:
            async with self._lock:
                if not self._singly:  # batches may have been refused while this waited
                    items = await self._deliver(items, outcomes)
        if items:
            await self._deliver_singly(items, outcomes)
        return [outcome or DELIVERED for outcome in outcomes]

    async def check(self) -> str:
        """Attach a sender (within `CHECK_TIMEOUT`) and describe the entity's batch limit."""
        try:
            async with self._lock:
                await self._connected(min(self._config.send_timeout, CHECK_TIMEOUT))
                limit = self._link_limit
        finally:
            await self.close()
        if not self._config.batching:
            return f"{self.where}: sender attached, one message per transfer, up to {limit} bytes"
        return f"{self.where}: sender attached, the entity takes batches up to {limit} bytes"

    async def close(self) -> None:
        await self._drop_sender()
        await self._links.close()
        for resource in (self._client, self._credential):
            if resource is not None:
                await close_quietly(resource)
        self._client = self._credential = None

    # -- connecting -----------------------------------------------------------------------

    async def _connected(self, timeout: float) -> ServiceBusSender:
        """The batch link, attached first if needed."""
        await self._follow_secret_files()
        if self._sender is None:
            self._sender = await self._attach(timeout)
        return self._sender

    async def _attach(self, timeout: float) -> ServiceBusSender:
        """A new sender link (its attach tells the batch limit), the client created first
        if needed. Raises SinkFatalError, or SinkError for what a retry may fix."""
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
                await close_quietly(sender)
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
        return sender

    async def _follow_secret_files(self) -> None:
        """Connect again when a secret file changed (links other sends hold fail, and are
        retried)."""
        if self._client is not None and self._config.secret_values() != self._secrets:
            log.info("%s: a secret file changed; connecting again with it", self.where)
            await self.close()

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
            await close_quietly(sender)

    def _hand_over_the_batch_link(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            self._links.adopt(sender)

    # -- sending in batches ---------------------------------------------------------------

    async def _deliver(self, items: list[Item], outcomes: list[Outcome | None]) -> list[Item]:
        """Send `items` in order in batches, filling `outcomes`; at the first failure, every
        item not yet delivered gets that failure's outcome (those after the failed batch as
        not attempted). Returns the items to send one by one instead: those not delivered
        when the entity refused batches."""
        trying = items  # what a failure now was an attempt at
        try:
            sender = await self._connected(self._config.send_timeout)
            groups = await pack(sender, items, self._limit, MAX_BATCH_MESSAGES)
            while groups:
                group = groups.pop(0)
                trying = group.items
                try:
                    await self._transfer(sender, await payload(sender, group, self._limit))
                except MessageSizeExceededError as exc:
                    if len(group.items) == 1:
                        outcomes[group.items[0].batch_index] = _too_large(group.items[0], exc)
                        continue
                    log.info(
                        "sink %s: Service Bus refused a batch of %d messages as too large; "
                        "splitting it",
                        self.name,
                        len(group.items),
                    )
                    groups[:0] = halves(group.items)
                    continue
                for item in group.items:
                    outcomes[item.batch_index] = DELIVERED
        except SinkFatalError:
            raise
        except SinkError as exc:  # could not connect
            fail_rest(outcomes, items, trying, Transient(str(exc)))
        except Exception as exc:
            if _errors.refuses_batches(exc):
                self._stop_batching(exc)
                return [item for item in items if outcomes[item.batch_index] is None]
            if _errors.is_fatal(exc):
                raise _errors.fatal(exc, self.where) from None
            fail_rest(outcomes, items, trying, self._transient(exc))
        return []

    def _stop_batching(self, exc: Exception) -> None:
        log.warning(
            "sink %s: %s refuses batches of distinct messages (Service Bus does not support "
            "them on an entity with partitioning and duplicate detection enabled); sending "
            "messages one by one from now on (`batching: false` skips this first try): %s",
            self.name,
            self.where,
            _errors.describe(exc),
        )
        self._singly = True
        self._hand_over_the_batch_link()

    async def _transfer(self, sender: ServiceBusSender, message: Any) -> None:
        """One transfer, acknowledged within `send_timeout` or its link is discarded."""
        timeout = self._config.send_timeout
        try:
            # The SDK's timeout covers the send; ours also covers a send it never ends.
            async with asyncio.timeout(timeout + 1):
                await sender.send_messages(message, timeout=timeout)
        except TimeoutError:
            if sender is self._sender:
                self._sender = None
            await self._links.discard(sender)
            raise TimeoutError(f"no acknowledgement within {timeout:g}s") from None

    # -- sending one message per transfer -------------------------------------------------

    async def _deliver_singly(self, items: list[Item], outcomes: list[Outcome | None]) -> None:
        """Each study's items in order on a link of its own, the studies concurrently."""
        await self._follow_secret_files()
        studies: dict[str, list[Item]] = {}
        for item in items:
            studies.setdefault(item.key, []).append(item)
        fatal: list[SinkFatalError] = []
        await asyncio.gather(*(self._send_study(s, outcomes, fatal) for s in studies.values()))
        if fatal:
            raise fatal[0]

    async def _send_study(
        self, items: list[Item], outcomes: list[Outcome | None], fatal: list[SinkFatalError]
    ) -> None:
        """One study's items one after the other; at the first failure, the rest of the
        study gets its outcome (not attempted), so nothing of it overtakes the failed one."""
        trying = items
        try:
            async with self._links.lease() as sender:
                for item in items:
                    trying = [item]
                    try:
                        await self._transfer(sender, item.message)
                    except MessageSizeExceededError as exc:
                        outcomes[item.batch_index] = _too_large(item, exc)
                        continue
                    outcomes[item.batch_index] = DELIVERED
        except SinkFatalError as exc:
            fatal.append(exc)
        except SinkError as exc:  # could not attach a link
            fail_rest(outcomes, items, items, Transient(str(exc)))
        except Exception as exc:
            if _errors.is_fatal(exc):
                fatal.append(_errors.fatal(exc, self.where))
            else:
                fail_rest(outcomes, items, trying, self._transient(exc))

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


def _too_large(item: Item, exc: MessageSizeExceededError) -> Permanent:
    reason = _errors.describe(exc)
    return Permanent(f"too large for Service Bus ({item.size}-byte body): {reason}")


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
