"""The stdout sink: bodies plus newline on standard output's binary buffer, flushed.

A closed pipe means nothing can ever be delivered: fatal.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from bridge.core.sink import Outcome, SinkFatalError
from sinks._io import JsonLinesSink

if TYPE_CHECKING:
    from sinks.stdout.config import Config


class StdoutSink(JsonLinesSink):
    def __init__(self, *, name: str) -> None:
        super().__init__(name=name, target="stdout")

    async def open(self) -> None:
        """Nothing to open: standard output is already there."""

    def _write(self, data: bytes) -> None:
        # Looked up per write so that a replaced sys.stdout (tests, embedding) is honoured.
        out = sys.stdout.buffer
        out.write(data)
        out.flush()

    def _failed(self, exc: OSError) -> Outcome:
        if isinstance(exc, BrokenPipeError):
            raise SinkFatalError("stdout is closed (broken pipe)") from None
        return super()._failed(exc)

    async def check(self) -> str:
        return "stdout"

    async def close(self) -> None:
        """Leave standard output open: it belongs to the process."""


def create(config: Config, *, name: str) -> StdoutSink:
    return StdoutSink(name=name)
