"""Start the simulator as a subprocess on a free port, for tests and benchmarks.

The child runs `python -m bridge.simulator --port 0 ...` (a free port unless `port` is
given) with the current interpreter; the parent waits (with a deadline, no fixed sleeps)
for its one stdout line and reads the URL from it. Keyword options become CLI flags:
`entries=10` -> `--entries 10`, `file_path=True` -> `--file-path`; False and None are left
out.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import IO, Any, Self

_LISTENING = re.compile(rb"simulator listening on (http://\S+)")


def cli_arguments(options: dict[str, Any]) -> list[str]:
    arguments: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            arguments.append(flag)
        elif value is not None and value is not False:
            arguments += [flag, str(value)]
    return arguments


class SimulatorSubprocess:
    def __init__(self, *arguments: str, startup_timeout: float = 60.0, **options: Any) -> None:
        options = {"port": 0, **options}  # a free port unless one is asked for
        self.argv = [sys.executable, "-m", "bridge.simulator", *arguments, *cli_arguments(options)]
        self.startup_timeout = startup_timeout
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def start(self) -> Self:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives until stop()
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            self.url = self._wait_for_url(time.monotonic() + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code. Idempotent."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def stderr(self) -> str:
        """What the simulator wrote on stderr so far (for failure messages)."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def close(self) -> None:
        """Stop the process and release its files."""
        self.stop()
        if self._stderr is not None:
            self._stderr.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _wait_for_url(self, deadline: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        output = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in output:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"simulator not listening in time: {self.stderr()}")
                if selector.select(remaining):
                    chunk = os.read(self.process.stdout.fileno(), 4096)
                    if not chunk:
                        self.process.wait()
                        raise RuntimeError(
                            f"simulator exited with {self.process.returncode}: {self.stderr()}"
                        )
                    output += chunk
        match = _LISTENING.match(output)
        if match is None:
            raise RuntimeError(f"unexpected simulator output: {output!r}")
        return match[1].decode()
