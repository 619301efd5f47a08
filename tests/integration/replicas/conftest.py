"""The shared store the replicas use: one fixture parameter per engine, everything
engine-specific here (a PostgreSQL database of the test's own; Azurite joins as a param)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bridge.config import PostgresOffsetsConfig
from tests.peers import postgres
from tests.peers.tcp_proxy import TcpProxy


@dataclass
class SharedStore:
    name: str
    offsets: dict[str, Any]  # the `offsets:` of the replicas' config
    proxy: TcpProxy  # between the replicas and the engine: `cut()` is an outage

    def config(self) -> Any:
        """The same store, reached directly (not through the proxy), for the test."""
        return PostgresOffsetsConfig(**{**self.offsets, "dsn": self.direct})

    direct: str = ""


def _postgres() -> Iterator[SharedStore]:
    with postgres.temporary_database() as database, TcpProxy(postgres.PORT) as proxy:
        offsets = {
            "type": "postgres",
            "dsn": postgres.dsn(database, port=proxy.port),
            "connect_timeout": "2s",
        }
        yield SharedStore("postgres", offsets, proxy, postgres.dsn(database))


ENGINES = {"postgres": _postgres}


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Iterator[SharedStore]:
    yield from ENGINES[request.param]()
