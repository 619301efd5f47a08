"""The JSON Lines file sink.

An event counts as delivered only once its batch is written, flushed and (by default)
fsynced. All file operations run on a worker thread, one at a time and in call order, so
batches land in the file in the order they were sent.

Every OSError (disk full, read-only file system, permissions) is `Transient`: the operator
can fix it, and a full disk is no reason to dead-letter anything. A failed write is cut
back off the file and the file is reopened at the next send, which also retries a failed
open. After a crash the file may end with a partial line: opening it adds a newline first,
so the next record starts on its own line (readers skip the one broken line).

The file is found by its path, not kept by its descriptor: before each batch the sink
checks that the path still names the open file (`stat` against `fstat`), and when the
file was renamed or removed (logrotate without copytruncate, an operator), it opens the
path anew, so nothing written after the rename lands in the renamed file (short of a
rename between that check and the write, microseconds apart). `reopen()` (on SIGHUP)
lets go of the file at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.core.blockingio import os_reason, probe_creatable
from bridge.core.sink import SinkError
from sinks._io import JsonLinesSink

if TYPE_CHECKING:
    from sinks.file.config import Config

log = logging.getLogger(__name__)


class FileSink(JsonLinesSink):
    def __init__(self, config: Config, *, name: str) -> None:
        super().__init__(name=name, target=config.path)
        self.path = config.path
        self._fsync = config.fsync
        self._rotate_bytes = config.rotate_bytes
        self._fd: int | None = None
        self._size = 0

    async def open(self) -> None:
        """Open now to surface problems early; a failure is retried at the next send."""
        try:
            await self._thread.run(self._open)
        except OSError as exc:
            reason = os_reason(exc, self.path)
            log.warning("sink %s: cannot open %s; retrying at the next send", self.name, reason)

    async def check(self) -> str:
        try:
            await self._thread.run(self._probe)
        except OSError as exc:
            reason = os_reason(exc, self.path)
            raise SinkError(f"file sink {self.name}: not writable: {reason}") from None
        return f"file {self.path}: writable"

    async def reopen(self) -> None:
        """Close the file now; the next send opens its path again."""
        await self._thread.run(self._close)

    async def close(self) -> None:
        await self._thread.run(self._close)

    # The methods below run on the worker thread.

    def _open(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                _write_all(fd, b"\n")  # end the partial line a crash left behind
                size += 1
            if self._fsync:
                os.fsync(fd)
                _fsync_dir(self.path.parent)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._size = fd, size

    def _write(self, data: bytes) -> None:
        self._follow_path()
        self._open()
        if self._rotate_bytes and self._size and self._size + len(data) > self._rotate_bytes:
            self._rotate()
        fd, start = self._fd, self._size
        assert fd is not None
        try:
            _write_all(fd, data)
            if self._fsync:
                os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)  # the retry rewrites the whole batch
            self._close()
            raise
        self._size += len(data)

    def _follow_path(self) -> None:
        """Close the open file if its path no longer names it (renamed or removed)."""
        if self._fd is None:
            return
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            named = None
        opened = os.fstat(self._fd)
        if named is None or (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
            log.info("sink %s: %s was renamed or removed; opening it anew", self.name, self.path)
            self._close()

    def _rotate(self) -> None:
        self._close()
        os.rename(self.path, _next_rotated_path(self.path))
        self._open()

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _probe(self) -> None:
        """Writable, changing nothing on disk (`check` creates no directory)."""
        if not self.path.parent.is_dir():
            probe_creatable(self.path)
            return
        with tempfile.TemporaryFile(dir=self.path.parent):
            pass
        if self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    """Make a file's creation or renaming durable, where the file system supports it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def _next_rotated_path(path: Path) -> Path:
    """`events.jsonl` → `events.<N>.jsonl`, N one more than the highest already there."""
    stem, suffix = (path.stem, path.suffix) if path.suffix else (path.name, "")
    pattern = re.compile(rf"{re.escape(stem)}\.(\d+){re.escape(suffix)}")
    taken = [int(m[1]) for name in os.listdir(path.parent) if (m := pattern.fullmatch(name))]
    return path.with_name(f"{stem}.{max(taken, default=0) + 1}{suffix}")


def create(config: Config, *, name: str) -> FileSink:
    return FileSink(config, name=name)
