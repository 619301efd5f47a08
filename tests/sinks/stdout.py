"""The stdout sink's contract harness: standard output replaced by a pipe the test reads.

The sink writes to whatever `sys.stdout` is at each write. The harness makes a pipe for
each test and puts its write end in `sys.stdout` when the sink's config is built, in the
test itself (pytest's output capture puts its own `sys.stdout` back between a test's
phases). The pipe is enlarged to hold everything a contract test writes, so no reader
thread is needed. A reader closing the pipe (a broken pipe) is the one way standard output
goes away.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import sys
from pathlib import Path
from typing import Any

from tests.sinks.harness import ROUTE, Received, SinkHarness

PIPE_BYTES = 1 << 20


class Harness(SinkHarness):
    type = "stdout"
    no_outage = (
        "standard output is never down: a slow reader blocks the write, a closed one is "
        "fatal (broken pipe)"
    )
    no_permanent = "every event is one line of bytes: standard output takes any of them"
    no_credentials = "standard output has no credentials"

    def start(self, workdir: Path) -> None:
        self._reader: int | None = None
        self._writer: io.TextIOWrapper | None = None

    def stop(self) -> None:
        self._release()

    def reset(self, workdir: Path) -> None:
        self._release()
        reader, writer = os.pipe()
        fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(reader, False)
        self._reader = reader
        self._writer = io.TextIOWrapper(open(writer, "wb"))  # noqa: SIM115 - until released
        self._data = b""

    def config(self) -> dict[str, Any]:
        if sys.stdout is not self._writer:
            self._stdout = sys.stdout
            sys.stdout = self._writer
        return {"name": ROUTE, "type": "stdout"}

    def received(self) -> list[Received]:
        while self._reader is not None:
            try:
                chunk = os.read(self._reader, PIPE_BYTES)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._data += chunk
        return [Received(line) for line in self._data.splitlines()]

    def remove_destination(self) -> None:
        self.received()  # keep what was written so far
        if self._reader is not None:
            os.close(self._reader)
            self._reader = None

    def _release(self) -> None:
        if self._writer is None:
            return
        if sys.stdout is self._writer:
            sys.stdout = self._stdout
        with contextlib.suppress(OSError):
            self._writer.close()
        if self._reader is not None:
            os.close(self._reader)
        self._reader, self._writer = None, None
