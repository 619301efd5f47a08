"""Broker semantics of the AMQP peer, apart from the wire: queues, duplicate detection by
message id within a window, per-session FIFO, a size limit, and counters.

`accept` decides what happens to one incoming transfer (a single message or a batch): the
whole transfer is stored or refused, as Service Bus does. A duplicate (same message id within
the window) is acknowledged but not stored. Messages keep their arrival order, which is also
every session's order; a receiver takes the oldest available message (of its session, if
it has one) and, in peek-lock mode, it stays locked until settled.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from proton import Message

from tests.peers.amqp_codec import summary

MESSAGE_SIZE_EXCEEDED = "amqp:link:message-size-exceeded"
SERVER_BUSY = "com.microsoft:server-busy"
NOT_ALLOWED = "amqp:not-allowed"


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
    entities: list[str] | None = None  # None: any entity exists

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown setting {name!r}")
            setattr(self, name, value)


class Store:
    def __init__(self) -> None:
        self.settings = Settings()
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
                "largest_transfer",  # bytes of the largest transfer stored
                "tokens_refused",  # put-token requests answered 401 for their token
            ),
            0,
        )
        self.put_tokens: list[dict[str, Any]] = []  # type and audience of each, oldest first
        self._sequence = 0

    def queue(self, name: str) -> Queue:
        """The queue of an entity path; `<topic>/Subscriptions/<sub>` reads its topic."""
        name = name.split("/Subscriptions/", 1)[0].split("/subscriptions/", 1)[0]
        if name not in self.queues:
            self.queues[name] = Queue(name)
        return self.queues[name]

    def exists(self, name: str) -> bool:
        base = name.split("/Subscriptions/", 1)[0].split("/subscriptions/", 1)[0]
        return self.settings.entities is None or base in self.settings.entities

    def accept(self, entity: str, messages: list[tuple[Message, int]], size: int) -> int:
        """Store one transfer's messages (message, encoded size); returns how many were new.
        Raises `Refused` when the whole transfer is rejected."""
        self.counters["transfers"] += 1
        self.counters["batches"] += len(messages) > 1
        settings = self.settings
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
            "put_tokens": list(self.put_tokens),
        }

    def clear(self) -> None:
        self.queues.clear()
        self.put_tokens.clear()
        for name in self.counters:
            self.counters[name] = 0
