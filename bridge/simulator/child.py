"""A child process that speaks in lines on its stdout: the simulator (for the demo, tests and
benchmarks) and the test peers run this way.

The parent reads lines with a deadline (a selector, no fixed sleeps); the child's stderr is
kept in a temporary file so that an error can say what the child printed. A child that reads
commands on its stdin stops when the parent closes it; any other child gets SIGTERM. Either
way it is killed if it lingers, so nothing outlives the parent's `close()`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self


class LineChild:
    #: What the child is, for error messages ("the simulator exited: ...").
    what = "child process"
    #: The exception raised when it does not answer in time or exits.
    error: type[Exception] = RuntimeError

    def __init__(self, argv: list[str], *, commands: bool = False, cwd: Path | None = None):
        """`commands`: the child reads commands on its stdin (`send_line`), and closing
        its stdin is how it is stopped."""
        self.argv = argv
        self.commands = commands
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._buffer = b""

    def start(self) -> Self:
        """Start the child; subclasses then read its first line (`read_line`)."""
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives until close()
        self._buffer = b""
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if self.commands else None,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=self.cwd,
        )
        return self

    def send_line(self, line: bytes) -> None:
        if self.process is None or self.process.stdin is None:
            raise self.error(f"the {self.what} is not running")
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def read_line(self, timeout: float) -> bytes:
        """The next line the child prints (without its newline), within `timeout` seconds."""
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise self.error(f"no answer from the {self.what} in time: {self.stderr()}")
                chunk = os.read(self.process.stdout.fileno(), 1 << 20)
                if not chunk:
                    code = self.process.wait()
                    raise self.error(f"the {self.what} exited with {code}: {self.stderr()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def stderr(self) -> str:
        """What the child wrote on stderr so far."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        """Close its stdin (a command reader) or SIGTERM it, then SIGKILL after `timeout`;
        the exit code. Idempotent."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            if process.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
            else:
                process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def close(self) -> None:
        """Stop the child and release its files."""
        self.stop()
        self.process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
