"""The test session's network guard: no test may send traffic outside loopback.

- In the test process, pytest-socket (`--allow-hosts` in pytest's addopts) refuses
  `socket.connect` to any other address.
- In the Python processes the tests start, `tests/netguard/sitecustomize.py` does (connects
  and name lookups, uvloop's included), put on their PYTHONPATH by `install`, and records
  each refusal in a log file.

A refusal raises an error where it happens, which the code under test may well take for an
unreachable peer and retry; `NetworkGuard` makes the test fail anyway, at its teardown.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest_socket

SUBPROCESS_GUARD = Path(__file__).resolve().parent / "netguard"
LOG_VARIABLE = "NETWORK_GUARD_LOG"  # read by the subprocess guard


def install() -> Path:
    """Guard every Python process started from now on; returns the log of refusals."""
    descriptor, name = tempfile.mkstemp(prefix="network-guard-", suffix=".log")
    os.close(descriptor)
    os.environ[LOG_VARIABLE] = name
    paths = [str(SUBPROCESS_GUARD), *filter(None, [os.environ.get("PYTHONPATH")])]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    return Path(name)


class NetworkGuard:
    """The refusals of one test: those of its subprocesses (new lines in the log) and those
    of pytest-socket in this process (seen by wrapping its guarded `connect`)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._read = log.stat().st_size
        self._refused: list[str] = []
        self._guarded = socket.socket.connect
        guarded = self._guarded

        def connect(sock: socket.socket, *args: Any) -> Any:
            try:
                return guarded(sock, *args)
            except pytest_socket.SocketConnectBlockedError as exc:
                self._refused.append(f"this process: {exc}")
                raise

        self._watching = connect
        socket.socket.connect = connect  # type: ignore[method-assign]

    def take(self) -> list[str]:
        """Refusals since the last call (or the test's start)."""
        with self.log.open("rb") as log:
            log.seek(self._read)
            lines = log.read().decode("utf-8", "replace").splitlines()
            self._read = log.tell()
        taken, self._refused = self._refused + lines, []
        return taken

    def close(self) -> None:
        """Stop watching (pytest-socket may already have restored the real `connect`)."""
        if socket.socket.connect is self._watching:
            socket.socket.connect = self._guarded  # type: ignore[method-assign]
