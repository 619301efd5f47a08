"""Sending a batch of events to one sink until each is delivered or given up on.

Transient failures are retried with exponential backoff and jitter (honouring the peer's
`Retry-After`), without limit or within the optional budget `retry.max_elapsed`, counted
from an event's first real attempt. When a send partially fails, later events of the same
study are sent again after the failed one, so the last copy a consumer receives of each
event is in the study's feed order. An event refused for good, or out of budget, is handed
to `give_up` (a route dead-letters it; `dlq redrive` keeps its record).

A sink that raises instead of answering counts as a transient failure of every event of
the send, never as a delivery; only `SinkFatalError` goes through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.core.backoff import Backoff
from bridge.core.event import Event
from bridge.core.sink import Outcome, Permanent, Sink, SinkFatalError, Transient


@dataclass
class RouteStats:
    """Counters since the process started (exported as Prometheus counters)."""

    forwarded: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    failed: dict[str, int] = field(
        default_factory=lambda: {"transient": 0, "permanent": 0, "poison": 0}
    )


GiveUp = Callable[[Event, str], Awaitable[None]]


class Sender:
    def __init__(
        self,
        sink: Sink,
        *,
        backoff: Backoff,
        max_elapsed: float | None,
        give_up: GiveUp,
        stats: RouteStats,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        on_send: Callable[[str, float], None] = lambda sink, seconds: None,
        on_outcomes: Callable[[list[Outcome]], None] = lambda outcomes: None,
        what: str = "events",
    ) -> None:
        self.sink = sink
        self.what = what  # in log lines: "3 events not delivered"
        self.backoff = backoff
        self.max_elapsed = max_elapsed
        self.stats = stats
        self._give_up = give_up
        self._log = log
        self._on_send = on_send
        self._on_outcomes = on_outcomes

    async def deliver(self, events: Sequence[Event], handled: Callable[[int], None]) -> None:
        """Send `events` (feed order) until each is delivered or given up on; `handled(i)`
        is called once for the event at index i when it is."""
        pending = list(range(len(events)))
        attempt = 0
        budget = self.max_elapsed
        give_up_at = None if budget is None else time.monotonic() + budget
        while pending:
            outcomes = await self.send(self.sink, [events[index] for index in pending])
            self._on_outcomes(outcomes)
            spent = give_up_at is not None and time.monotonic() >= give_up_at
            retry: list[int] = []
            held: set[str] = set()  # studies with an earlier event of this send to retry
            hint: float | None = None
            reason = ""
            for index, outcome in zip(pending, outcomes, strict=True):
                event = events[index]
                if isinstance(outcome, Permanent):
                    self.stats.failed["permanent"] += 1
                    await self._give_up(event, outcome.reason)
                elif isinstance(outcome, Transient) and outcome.attempted and spent:
                    self.stats.failed["transient"] += 1
                    late = f"still failing after retry.max_elapsed {budget:g}s"
                    await self._give_up(event, f"{outcome.reason} ({late})")
                elif isinstance(outcome, Transient) or event.key in held:
                    retry.append(index)
                    held.add(event.key)
                    if isinstance(outcome, Transient):
                        self.stats.failed["transient"] += 1
                        reason = outcome.reason
                        if outcome.retry_after is not None:
                            hint = max(hint or 0.0, outcome.retry_after)
                    continue
                else:
                    self.stats.forwarded += 1
                handled(index)
            pending = retry
            if spent and pending and budget is not None:  # held back unsent until now
                give_up_at, attempt = time.monotonic() + budget, 0
            if pending:
                self.stats.retries += len(pending)
                delay = self.backoff.delay(attempt, hint)
                if give_up_at is not None:  # the last attempt at the budget's end
                    delay = max(0.0, min(delay, give_up_at - time.monotonic()))
                attempt += 1
                self._log.warning(
                    "%d %s not delivered (%s); retrying in %.1fs",
                    len(pending),
                    self.what,
                    reason,
                    delay,
                )
                await asyncio.sleep(delay)

    async def send(self, sink: Sink, events: list[Event]) -> list[Outcome]:
        """`sink.send` once, where a misbehaving sink counts as a transient failure, never
        as a delivery."""
        started = time.monotonic()
        outcomes: list[Any]
        try:
            outcomes = await sink.send(events)
        except SinkFatalError:
            raise
        except Exception as exc:
            self._log.debug("sink %s raised", sink.name, exc_info=True)
            outcomes = [Transient(f"{type(exc).__name__}: {exc}")] * len(events)
        finally:
            self._on_send(sink.name, time.monotonic() - started)
        raise_if_cancelled()
        if len(outcomes) != len(events):
            reason = f"sink {sink.name} returned {len(outcomes)} outcomes for {len(events)} events"
            outcomes = [Transient(reason)] * len(events)
        return outcomes


def raise_if_cancelled() -> None:
    """Re-raise a cancellation a client library swallowed: the Service Bus SDK's connect
    (through Python 3.11's `asyncio.wait_for`) can answer a cancelled send with a
    connection error instead, and the route would retry it until the peer came back,
    holding up the shutdown all that time."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
