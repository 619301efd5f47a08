"""One bridge per state: an exclusive lock held by `run` (and `demo`).

Two bridges sharing cursors would deliver everything twice, and moving a cursor or
rewriting a dead-letter file under a running bridge would be undone or lost, so `run`
holds an advisory lock next to the offset store and the commands that change state take
it too; they fail at once with a clear line when a bridge runs. The kernel releases the
lock when the process dies, even on SIGKILL.

A lock on a file alone is lost when the file is deleted (`rm -rf state/` under a running
bridge: the next bridge locks a new file). So the holder also binds a Unix socket in the
abstract namespace named after the resolved path of the offset store, which no file
operation can remove, and checks after taking the file lock that the file it locked is
still the one at the path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from bridge.config import BridgeConfig, SqliteOffsetsConfig

#: Attempts at locking the file while something keeps replacing it.
_ATTEMPTS = 10


class Locked(Exception):
    """Another dicom-bridge process holds the state lock."""


def lock_path(config: BridgeConfig) -> Path | None:
    """Beside the SQLite file; None for a store on a server (replicas share it: their
    exclusivity is the `ha:` lease)."""
    if not isinstance(config.offsets, SqliteOffsetsConfig):
        return None
    path = Path(config.offsets.path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def state_lock(config: BridgeConfig, doing: str) -> Iterator[None]:
    path = lock_path(config)
    if path is None:
        yield
        return
    refusal = (
        f"cannot {doing}: another dicom-bridge uses this state ({path} is locked); stop it first"
    )
    with _state_socket(path, refusal), _locked_file(path, refusal):
        yield


@contextlib.contextmanager
def _state_socket(path: Path, refusal: str) -> Iterator[None]:
    """Hold `@dicom-bridge/<sha256 of the resolved lock path>` while the lock is held."""
    if not sys.platform.startswith("linux"):  # the abstract namespace is Linux's
        yield
        return
    digest = hashlib.sha256(os.fsencode(path.resolve())).hexdigest()
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            holder.bind(f"\0dicom-bridge/{digest}")
        except OSError:  # EADDRINUSE
            raise Locked(refusal) from None
        yield
    finally:
        holder.close()


@contextlib.contextmanager
def _locked_file(path: Path, refusal: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Locked(refusal) from None
            if _same_file(fd, path):
                yield
                return
        finally:
            os.close(fd)
        # Deleted or replaced between our open and our lock: lock the file there now.
    raise Locked(f"cannot lock {path}: something keeps replacing it")


def _same_file(fd: int, path: Path) -> bool:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (found.st_dev, found.st_ino)
