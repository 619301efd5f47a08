"""Disk faults for the file sink and the offset store: a size-limited tmpfs that can be
filled up, and the immutable attribute (`chattr +i`), both of which need root.

Being root makes permission bits useless for read-only tests; a full file system and an
immutable file or directory still fail writes (ENOSPC, EPERM), whoever asks. Where the
machine does not permit them, `Unsupported` says why, so callers can skip cleanly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

CHUNK = 1 << 20


class Unsupported(Exception):
    """This machine does not allow the fault (not root, no tmpfs, no chattr)."""


def _run(*command: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise Unsupported(f"{command[0]} is not installed") from exc
    if result.returncode != 0:
        raise Unsupported(f"{' '.join(command)}: {result.stderr.strip() or result.returncode}")


class Tmpfs:
    """A tmpfs of `size` (e.g. "64m") mounted on `path`; `fill()` takes all its free space,
    `unfill()` gives it back, `close()` unmounts."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size
        self.mounted = False
        self._filler = path / ".chaos-filler"

    def mount(self) -> Tmpfs:
        self.path.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path))
        self.mounted = True
        return self

    def fill(self) -> int:
        """Occupy every free byte; returns how many were taken."""
        taken = 0
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (CHUNK, 4096, 1):
                try:
                    while True:
                        taken += os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        return taken

    def unfill(self) -> None:
        self._filler.unlink(missing_ok=True)

    def close(self) -> None:
        """Unmount (whatever it holds is discarded, immutable files included)."""
        if self.mounted:
            with contextlib.suppress(Unsupported):
                _run("umount", str(self.path))
                self.mounted = False
            if self.mounted:  # still busy (a process holds a file open): detach it
                _run("umount", "-l", str(self.path))
                self.mounted = False

    def __enter__(self) -> Tmpfs:
        return self.mount()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def set_immutable(paths: list[Path], on: bool) -> None:
    """`chattr +i` (or `-i`) on each existing path: no new opens for writing, no renames or
    new entries in a directory, even for root."""
    existing = [str(path) for path in paths if path.exists()]
    if existing:
        _run("chattr", "+i" if on else "-i", *existing)
