"""Broker semantics of the AMQP peer, apart from the wire: queues, duplicate detection by
message id within a window, per-session FIFO, a size limit, partitioned entities, and
counters.

`accept` decides what happens to one incoming transfer (a single message or a batch): the
whole transfer is stored or refused, as Service Bus does. A duplicate (same message id within
the window) is acknowledged but not stored. Messages keep their arrival order, which is also
every session's order; a receiver takes the oldest available message (of its session, if
it has one) and, in peek-lock mode, it stays locked until settled.

Settings apply to every entity unless `entity_settings` overrides them for one (a Standard
namespace holds partitioned and non-partitioned entities; a Premium namespace created
partitioned is `partitioned` for all). A partitioned entity with duplicate detection refuses,
as Service Bus does, a batch whose messages have distinct message ids, session ids or
partition keys, and a message with neither a message id nor a partition key.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from proton import Message

from tests.peers.amqp_codec import summary

MESSAGE_SIZE_EXCEEDED = "amqp:link:message-size-exceeded"
SERVER_BUSY = "com.microsoft:server-busy"
NOT_ALLOWED = "amqp:not-allowed"
PARTITION_KEY = "x-opt-partition-key"
#: Service Bus's words (two spaces included) and the diagnostics it appends.
BATCH_REFUSED = (
    "Batching brokered messages with distinct SessionId, PartitionKey, or MessageId  is not "
    "supported for an entity with partitioning and duplicate detection enabled."
)
NO_MESSAGE_ID = (
    "Message to a partitioned entity with duplicate detection enabled must have either "
    "PartitionKey or MessageId set."
)


class Refused(Exception):
    """The transfer is rejected with an AMQP error condition."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


@dataclass
class Stored:
    sequence: int
    message: Message
    size: int
    enqueued: float
    locked: bool = False
    deliveries: int = 0


@dataclass
class Queue:
    name: str
    messages: OrderedDict[int, Stored] = field(default_factory=OrderedDict)
    seen: dict[str, float] = field(default_factory=dict)  # message id -> when accepted

    def next_available(self, session: str | None) -> Stored | None:
        for stored in self.messages.values():
            if not stored.locked and (session is None or stored.message.group_id == session):
                return stored
        return None

    def sessions(self) -> list[str]:
        """Sessions with an available message, oldest first."""
        found: dict[str, None] = {}
        for stored in self.messages.values():
            if not stored.locked and stored.message.group_id is not None:
                found.setdefault(stored.message.group_id, None)
        return list(found)


@dataclass
class Settings:
    max_message_size: int = 256 * 1024
    duplicate_detection: bool = False
    duplicate_window: float = 600.0
    server_busy: bool = False
    reject_condition: str | None = None  # refuse every transfer with this condition
    cbs_status: int = 202  # answer to put-token (401 = bad credentials)
    cbs_token: str | None = None  # the Entra ID token put-token must carry (a JWT); None: any
    requires_session: bool = False  # refuse messages without a session id, as Service Bus
    partitioned: bool = False  # refuse what a partitioned entity with duplicate detection does
    entities: list[str] | None = None  # None: any entity exists

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown setting {name!r}")
            setattr(self, name, value)


#: Settings that describe an entity, which `entity_settings` may set per entity.
ENTITY_SETTINGS = frozenset(
    (
        "max_message_size",
        "duplicate_detection",
        "duplicate_window",
        "requires_session",
        "partitioned",
    )
)


class Store:
    def __init__(self) -> None:
        self.settings = Settings()
        self.entity_settings: dict[str, dict[str, Any]] = {}  # entity -> overrides
        self.queues: dict[str, Queue] = {}
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "transfers",  # incoming transfers (a batch is one)
                "batches",  # transfers holding a batch envelope of several messages
                "accepted",  # messages stored
                "duplicates",  # messages dropped by duplicate detection
                "rejected",  # transfers refused with `reject_condition`
                "busy",  # transfers refused with server-busy
                "too_large",  # transfers refused as larger than max_message_size
                "partitioned_refusals",  # transfers a partitioned entity refused (batching)
                "largest_transfer",  # bytes of the largest transfer stored
                "tokens_refused",  # put-token requests answered 401 for their token
            ),
            0,
        )
        self.put_tokens: list[dict[str, Any]] = []  # type and audience of each, oldest first
        self._sequence = 0

    def queue(self, name: str) -> Queue:
        """The queue of an entity path; `<topic>/Subscriptions/<sub>` reads its topic."""
        name = _base(name)
        if name not in self.queues:
            self.queues[name] = Queue(name)
        return self.queues[name]

    def exists(self, name: str) -> bool:
        return self.settings.entities is None or _base(name) in self.settings.entities

    def set_entity(self, name: str, values: dict[str, Any]) -> None:
        """Override entity settings (`ENTITY_SETTINGS`) for one entity."""
        unknown = set(values) - ENTITY_SETTINGS
        if unknown:
            raise ValueError(f"not an entity setting: {', '.join(sorted(unknown))}")
        self.entity_settings.setdefault(_base(name), {}).update(values)

    def settings_of(self, entity: str) -> Settings:
        overrides = self.entity_settings.get(_base(entity))
        return dataclasses.replace(self.settings, **overrides) if overrides else self.settings

    def accept(self, entity: str, messages: list[tuple[Message, int]], size: int) -> int:
        """Store one transfer's messages (message, encoded size); returns how many were new.
        Raises `Refused` when the whole transfer is rejected."""
        self.counters["transfers"] += 1
        self.counters["batches"] += len(messages) > 1
        settings = self.settings_of(entity)
        if settings.server_busy:
            self._refuse("busy", SERVER_BUSY, "The server is busy. Please retry later.")
        if settings.reject_condition:
            self._refuse("rejected", settings.reject_condition, "Rejected by the test peer.")
        if settings.requires_session and any(m.group_id is None for m, _ in messages):
            self._refuse(
                "rejected",
                NOT_ALLOWED,
                "The SessionId was not set on a message, and it cannot be sent to the entity. "
                "Entities that have session support enabled can only receive messages that "
                "have the SessionId set to a valid value.",
            )
        if settings.partitioned and settings.duplicate_detection:
            self._partitioned_rule([message for message, _ in messages])
        if size > settings.max_message_size:
            self._refuse(
                "too_large",
                MESSAGE_SIZE_EXCEEDED,
                f"The received message (size: {size} bytes) exceeds the limit "
                f"({settings.max_message_size} bytes) currently allowed on the link.",
            )
        queue = self.queue(entity)
        now = time.monotonic()
        new = 0
        for message, encoded_size in messages:
            key = None if message.id is None else str(message.id)
            if key is not None:  # remembered even while detection is off
                when = queue.seen.get(key)
                recent = when is not None and now - when < settings.duplicate_window
                if settings.duplicate_detection and recent:
                    self.counters["duplicates"] += 1
                    continue
                queue.seen[key] = now
            self._sequence += 1
            queue.messages[self._sequence] = Stored(self._sequence, message, encoded_size, now)
            new += 1
        self.counters["accepted"] += new
        self.counters["largest_transfer"] = max(self.counters["largest_transfer"], size)
        return new

    def put_token(self, token_type: str, audience: str, token: str) -> int:
        """The status answering a CBS put-token: `cbs_status`, or 401 when `cbs_token` is
        set and this is not that JWT."""
        self.put_tokens.append({"type": token_type, "audience": audience})
        expected = self.settings.cbs_token
        if expected is not None and (token_type != "jwt" or token != expected):
            self.counters["tokens_refused"] += 1
            return 401
        return self.settings.cbs_status

    def _partitioned_rule(self, messages: list[Message]) -> None:
        """What Service Bus refuses on a partitioned entity with duplicate detection: it
        does not implement batches of distinct messages there (every message of a batch
        must share the batch's partition)."""
        if any(m.id is None and _partition_key(m) is None for m in messages):
            self._refuse("partitioned_refusals", NOT_ALLOWED, NO_MESSAGE_ID + _diagnostics())
        for key in (lambda m: m.id, lambda m: m.group_id, _partition_key):
            if len({str(key(m)) for m in messages}) > 1:
                self._refuse("partitioned_refusals", NOT_ALLOWED, BATCH_REFUSED + _diagnostics())

    def _refuse(self, counter: str, condition: str, description: str) -> None:
        self.counters[counter] += 1
        raise Refused(condition, description)

    def settle(self, entity: str, sequence: int, *, consumed: bool) -> None:
        """A delivered message was settled: removed if consumed, else available again."""
        queue = self.queue(entity)
        stored = queue.messages.get(sequence)
        if stored is None:
            return
        if consumed:
            del queue.messages[sequence]
        else:
            stored.locked = False

    def view(self, entity: str | None = None) -> dict[str, Any]:
        queues = [self.queue(entity)] if entity else list(self.queues.values())
        return {
            queue.name: [summary(s.message, s.size, s.sequence) for s in queue.messages.values()]
            for queue in queues
        }

    def arrivals(self, entity: str) -> list[tuple[str | None, float]]:
        """(message id, enqueue time on the system-wide monotonic clock) of every stored
        message, oldest first: cheaper than `view` for many messages, and comparable with
        `time.monotonic()` in any process of this machine."""
        return [
            (None if s.message.id is None else str(s.message.id), s.enqueued)
            for s in self.queue(entity).messages.values()
        ]

    def stats(self) -> dict[str, Any]:
        return {
            "counters": dict(self.counters),
            "queues": {name: len(queue.messages) for name, queue in self.queues.items()},
            "settings": dict(self.settings.__dict__),
            "entity_settings": {name: dict(v) for name, v in self.entity_settings.items()},
            "put_tokens": list(self.put_tokens),
        }

    def clear(self) -> None:
        self.queues.clear()
        self.put_tokens.clear()
        for name in self.counters:
            self.counters[name] = 0


def _base(name: str) -> str:
    """The entity of a path: `<topic>/Subscriptions/<sub>` is its topic."""
    return name.split("/Subscriptions/", 1)[0].split("/subscriptions/", 1)[0]


def _partition_key(message: Message) -> Any:
    return (message.annotations or {}).get(PARTITION_KEY)


def _diagnostics() -> str:
    """The kind of tail Service Bus appends to its error descriptions."""
    return f" Reference:{uuid.uuid4()}, TrackingId:{uuid.uuid4()}_B1, SystemTracker:peer:Queue"
