"""What a closed sink may not leave behind: tasks, threads, child processes, connections.

`Leftovers` notes what exists when it is made and, once the sink is closed, waits (with a
deadline, as a peer may take a moment to close its side) until nothing new is left.

- Blocking calls a sink makes through `asyncio.to_thread` run on the loop's default
  executor, which keeps idle threads: the test gets an executor of its own, and `check`
  shuts it down, so a call still running there is a leftover too.
- Connections are the process's TCP sockets still open on the network (any state but
  closed): a socket whose connection is over but whose descriptor waits for the garbage
  collector (a client library dropping a broken connection) is not running.
- A peer running in the test process (the webhook receiver) has connections and threads of
  its own: sockets on a port this process listens on are the peer's side, and threads named
  in the harness's `peer_threads` are its (as is the event loop's wake-up socket pair).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROC = Path("/proc/self")
_AFTER = "after-close"  # the threads of the executor that blocking calls use from `check` on
_LISTEN = "0A"  # TCP state in /proc/net/tcp
_STATES = {"01": "established", "02": "syn-sent", "04": "fin-wait", "08": "close-wait"}


def _sockets() -> set[str]:
    """This process's open sockets, by inode."""
    found = set()
    for fd in os.listdir(PROC / "fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(PROC / "fd" / fd)
            if target.startswith("socket:["):
                found.add(target[len("socket:[") : -1])
    return found


def _tcp() -> dict[str, tuple[int, str]]:
    """Every TCP socket of the machine's network namespace: inode -> (local port, state)."""
    table = {}
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / name).read_text().splitlines()[1:]:
                fields = line.split()
                table[fields[9]] = (int(fields[1].rsplit(":", 1)[1], 16), fields[3])
    return table


def _connections(sockets: set[str]) -> dict[str, str]:
    """Those of `sockets` that are TCP connections of this process's clients (not the
    server side of a peer listening in this process), described."""
    tcp = _tcp()
    ours = _sockets()
    listening = {port for inode, (port, state) in tcp.items() if inode in ours and state == _LISTEN}
    return {
        inode: f"local port {port}, {_STATES.get(state, 'state ' + state)}"
        for inode, (port, state) in tcp.items()
        if inode in sockets and port not in listening
    }


def _children() -> set[int]:
    found: set[int] = set()
    for task in (PROC / "task").iterdir():
        with contextlib.suppress(OSError):
            found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


class Leftovers:
    def __init__(self, peer_threads: Iterable[str] = ()) -> None:
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(thread_name_prefix="sink-under-test")
        loop.set_default_executor(self._executor)
        self._ignored = (_AFTER, *peer_threads)
        self._tasks = asyncio.all_tasks()
        self._threads = set(threading.enumerate())
        self._sockets = _sockets()
        self._children = _children()

    def _new(self) -> list[str]:
        tasks = asyncio.all_tasks() - self._tasks - {asyncio.current_task()}
        threads = set(threading.enumerate()) - self._threads
        connections = _connections(_sockets() - self._sockets)
        children = _children() - self._children
        return [
            *(f"task {task.get_coro()!r}" for task in tasks),
            *(
                f"thread {thread.name}"
                for thread in threads
                if thread.is_alive() and not thread.name.startswith(self._ignored)
            ),
            *(f"connection ({what})" for what in connections.values()),
            *(f"child process {pid}" for pid in sorted(children)),
        ]

    async def check(self, deadline: float = 10.0) -> list[str]:
        """What is still left `deadline` seconds after the sink's close at the latest
        (empty: nothing). Later blocking calls go to a fresh default executor."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix=_AFTER))
        until = time.monotonic() + deadline
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(self._executor.shutdown), deadline)
        while (left := self._new()) and time.monotonic() < until:
            await asyncio.sleep(0.05)
        return left

    def release(self) -> None:
        """Let the test's executor go, should `check` not have run."""
        self._executor.shutdown(wait=False)
