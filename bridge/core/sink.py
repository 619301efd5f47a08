"""The contract every sink implements, and the config fields every sink shares.

A sink receives batches of formatted events from its route and reports, per event, whether
it was delivered, failed transiently (the route retries it, the cursor waits) or failed
permanently (the route dead-letters it and moves on). A failure that makes the whole sink
unusable (bad credentials, endpoint gone) is raised as `SinkFatalError`: the route stops
with that one line and keeps its cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bridge.core.event import Event


@dataclass(frozen=True, slots=True)
class Delivered:
    """The sink's peer acknowledged the event durably."""


@dataclass(frozen=True, slots=True)
class Transient:
    """Worth retrying later; `retry_after` (seconds) is the peer's hint, if it gave one.
    `attempted` is False for an event the sink held back, unsent, behind a failed one: a
    retry budget (`retry.max_elapsed`) counts from an event's first real attempt."""

    reason: str
    retry_after: float | None = None
    attempted: bool = True


@dataclass(frozen=True, slots=True)
class Permanent:
    """Will never succeed as sent (too large, rejected): dead-letter it with the reason."""

    reason: str


Outcome = Delivered | Transient | Permanent
DELIVERED = Delivered()


class SinkError(Exception):
    """A sink could not be opened or checked; the message is one line without secrets."""


class SinkFatalError(SinkError):
    """The sink cannot continue (authentication, authorization, endpoint gone)."""


class Sink(Protocol):
    """What a route needs from a sink. Implementations live in `sinks/<type>` and subclass
    `BaseSink`, which gives the members a sink may have nothing to say about."""

    name: str

    async def open(self) -> None: ...

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        """Deliver `events` (in feed order) and return one outcome per event, same order."""
        ...

    async def check(self) -> str:
        """Probe the peer; return a one-line description, raise SinkError if unreachable."""
        ...

    @property
    def unreachable(self) -> str | None:
        """Why the peer cannot be reached right now, when the sink knows it while a send is
        still pending (readiness and the connected gauge use it; otherwise only send
        outcomes tell)."""
        ...

    async def reopen(self) -> None:
        """Let go of the files the sink writes and open their paths again at the next send
        (SIGHUP, after logrotate renamed them)."""
        ...

    async def close(self) -> None: ...


class BaseSink:
    """Defaults of `Sink`'s members that only some sinks need."""

    @property
    def unreachable(self) -> str | None:
        return None

    async def reopen(self) -> None:
        return None
