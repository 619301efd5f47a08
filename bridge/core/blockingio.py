"""Running blocking I/O (files, sqlite, stdout) from asyncio code."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SerialThread:
    """Runs blocking calls on worker threads, one at a time, in the order they were made.

    The asyncio lock keeps call order (its waiters are FIFO) without tying up threads;
    the thread lock keeps calls exclusive even when an awaiting task is cancelled while
    its call still runs on the worker thread (a write must never overlap a close).
    """

    def __init__(self) -> None:
        self._order = asyncio.Lock()
        self._exclusive = threading.Lock()

    async def run(self, call: Callable[[], T]) -> T:
        async with self._order:
            return await asyncio.to_thread(self._run, call)

    def _run(self, call: Callable[[], T]) -> T:
        with self._exclusive:
            return call()


def os_reason(exc: OSError, where: object) -> str:
    """One line naming the path, the cause and its errno name: `out/x: No space ... (ENOSPC)`."""
    code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else type(exc).__name__
    return f"{exc.filename or where}: {exc.strerror or exc} ({code})"


def probe_creatable(path: Path) -> None:
    """Check, creating nothing, that `path` and its missing parents could be created: its
    nearest existing ancestor is a directory this process may write into. Raises OSError
    naming that ancestor."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        code = errno.ENOTDIR
        raise NotADirectoryError(code, os.strerror(code), str(ancestor))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        code = errno.EACCES
        raise PermissionError(code, os.strerror(code), str(ancestor))
