"""The sinks that write JSON Lines (file, stdout) share their sending: the events' bodies,
one per line, written on a worker thread (one write at a time, in call order, so batches
land in the order they were sent; a slow reader or disk blocks the thread, not the event
loop). An OSError is transient by default: an operator can fix a full disk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bridge.core.blockingio import SerialThread, os_reason
from bridge.core.sink import DELIVERED, BaseSink, Outcome, Transient

if TYPE_CHECKING:
    from bridge.core.event import Event


class JsonLinesSink(BaseSink):
    def __init__(self, *, name: str, target: object) -> None:
        self.name = name
        self._target = target  # what a failure names: a path, "stdout"
        self._thread = SerialThread()

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        if not events:
            return []
        data = b"".join([event.body + b"\n" for event in events])
        try:
            await self._thread.run(lambda: self._write(data))
        except OSError as exc:
            return [self._failed(exc)] * len(events)
        return [DELIVERED] * len(events)

    def _write(self, data: bytes) -> None:
        """Write `data` durably enough to count as delivered (on the worker thread)."""
        raise NotImplementedError

    def _failed(self, exc: OSError) -> Outcome:
        """The outcome of a write that failed (or raise SinkFatalError)."""
        return Transient(os_reason(exc, self._target))
