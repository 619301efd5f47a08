"""One bridge per state: an exclusive lock held by `run` (and `demo`).

Two bridges sharing cursors would deliver everything twice, and moving a cursor or
rewriting a dead-letter file under a running bridge would be undone or lost, so `run`
holds an advisory lock next to the offset store and the commands that change state take
it too; they fail at once with a clear line when a bridge runs. The kernel releases the
lock when the process dies, even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bridge.config import BridgeConfig


class Locked(Exception):
    """Another dicom-bridge process holds the state lock."""


def lock_path(config: BridgeConfig) -> Path:
    """Beside the SQLite file (stores on servers will need a lease of their own)."""
    path = Path(config.offsets.path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def state_lock(config: BridgeConfig, doing: str) -> Iterator[None]:
    path = lock_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Locked(
                f"cannot {doing}: another dicom-bridge uses this state ({path} is locked); "
                "stop it first"
            ) from None
        yield
    finally:
        os.close(fd)
