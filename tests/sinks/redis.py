"""The Redis sink's contract harness: the Redis server of the machine (127.0.0.1:6379),
reached through a TCP proxy of the tests' own (`tests.peers.tcp_proxy`).

Each test writes to streams of its own, `contract.<pid>.<n>.{action}`, as an ACL user of
the harness's own (created at start, deleted at stop, with its keys). Read back with
redis-py's XRANGE. Down is the proxy cut (connections reset, connects refused), back is it
listening again; the server keeps what it holds. A refused event is a Delete whose stream
key holds a string (WRONGTYPE: that event's stream only); refused credentials are the
user's password changed; the destination gone is the user's key permissions revoked
(NOPERM).
"""

from __future__ import annotations

import itertools
import os
import secrets
from pathlib import Path
from typing import Any

import redis

from bridge.core.event import Event
from bridge.delivery.format import Formatter
from tests.factories import SOURCE, entry
from tests.peers.tcp_proxy import THREAD, TcpProxy
from tests.sinks.harness import ROUTE, Received, SinkHarness

PORT = 6379
PASSWORD = f"contract-redis-{secrets.token_hex(8)}"
_tests = itertools.count(1)


def admin() -> redis.Redis:
    """A client of the server itself (not through the proxy), as the default user."""
    return redis.Redis(host="127.0.0.1", port=PORT)


class Harness(SinkHarness):
    type = "redis"
    secrets = (PASSWORD,)
    peer_threads = (THREAD,)

    def start(self, workdir: Path) -> None:
        self.admin = admin()
        self.proxy = TcpProxy(PORT).start()
        self.root = f"contract.{os.getpid()}.{secrets.token_hex(3)}"
        self.user = f"{self.root}.user"
        self.prefix = ""

    def stop(self) -> None:
        self.proxy.stop()
        self._forget()
        self.admin.acl_deluser(self.user)
        self.admin.close()

    def reset(self, workdir: Path) -> None:
        self.proxy.restore()
        self._forget()
        self._user(PASSWORD, [f"{self.root}.*"])
        self.prefix = f"{self.root}.{next(_tests)}"

    def config(self) -> dict[str, Any]:
        return {
            "name": ROUTE,
            "type": "redis",
            "url": f"redis://127.0.0.1:{self.proxy.port}/0",
            "stream": self.prefix + ".{action}",
            "username": self.user,
            "password": PASSWORD,
            "timeout": "2s",
        }

    def received(self) -> list[Received]:
        return [
            Received(fields[b"event"], id=fields[b"id"].decode())
            for _, fields in self.admin.xrange(f"{self.prefix}.create")
        ]

    def take_down(self) -> None:
        self.proxy.cut()

    def bring_back(self) -> None:
        self.proxy.restore()

    def refuse(self, sequence: int) -> Event:
        self.admin.set(f"{self.prefix}.delete", "not a stream")
        return Formatter(SOURCE).event(entry(sequence, action="Delete"))

    def refuse_credentials(self) -> None:
        self._user("another-password", [f"{self.root}.*"])

    def remove_destination(self) -> None:
        self._user(PASSWORD, [])

    def _user(self, password: str, keys: list[str]) -> None:
        """The harness's user, overwritten (ACL SETUSER replaces what it had)."""
        self.admin.acl_setuser(
            self.user,
            enabled=True,
            reset=True,
            passwords=[f"+{password}"],
            keys=keys,
            categories=["+@all"],
        )

    def _forget(self) -> None:
        keys = list(self.admin.scan_iter(match=f"{self.root}.*", count=1000))
        if keys:
            self.admin.delete(*keys)
