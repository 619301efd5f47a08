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
    from bridge.envelope import Event


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
    """What a route needs from a sink. Implementations live in `sinks/<type>`."""

    name: str

    async def open(self) -> None: ...

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        """Deliver `events` (in feed order) and return one outcome per event, same order."""
        ...

    async def check(self) -> str:
        """Probe the peer; return a one-line description, raise SinkError if unreachable."""
        ...

    # Optional: `unreachable: str | None`, why the peer cannot be reached right now when
    # the sink knows it while a send is still pending (readiness and the connected gauge
    # use it; without it, only send outcomes tell).

    # Optional: `async def reopen(self) -> None`, let go of the files the sink writes and
    # open their paths again at the next send (SIGHUP, after logrotate renamed them).

    async def close(self) -> None: ...


async def reopen(sink: Sink) -> None:
    """Call the sink's optional `reopen` hook (sinks without files have none)."""
    hook = getattr(sink, "reopen", None)
    if hook is not None:
        await hook()
