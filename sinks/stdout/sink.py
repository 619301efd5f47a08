"""The stdout sink: bodies plus newline on standard output's binary buffer, flushed.

Writes run on a worker thread: a slow reader at the other end of a pipe blocks the
thread, not the event loop. A closed pipe means nothing can ever be delivered: fatal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bridge.core.blockingio import SerialThread, os_reason
from bridge.core.sink import DELIVERED, BaseSink, Outcome, SinkFatalError, Transient
from sinks._io import json_lines

if TYPE_CHECKING:
    from bridge.core.event import Event
    from sinks.stdout.config import Config


class StdoutSink(BaseSink):
    def __init__(self, *, name: str) -> None:
        self.name = name
        self._thread = SerialThread()

    async def open(self) -> None:
        """Nothing to open: standard output is already there."""

    async def send(self, events: Sequence[Event]) -> list[Outcome]:
        if not events:
            return []
        data = json_lines(events)
        try:
            await self._thread.run(lambda: _write(data))
        except BrokenPipeError:
            raise SinkFatalError("stdout is closed (broken pipe)") from None
        except OSError as exc:
            return [Transient(os_reason(exc, "stdout"))] * len(events)
        return [DELIVERED] * len(events)

    async def check(self) -> str:
        return "stdout"

    async def close(self) -> None:
        """Leave standard output open: it belongs to the process."""


def _write(data: bytes) -> None:
    # Looked up per write so that a replaced sys.stdout (tests, embedding) is honoured.
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def create(config: Config, *, name: str) -> StdoutSink:
    return StdoutSink(name=name)
