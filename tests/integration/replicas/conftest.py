"""The shared store the replicas use: one fixture parameter per engine, everything
engine-specific here (a PostgreSQL database of the test's own; Azurite joins as a param)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import TypeAdapter

from bridge.config import OffsetsConfig
from tests.peers import postgres
from tests.peers.azurite import shared_azurite, unique_container
from tests.peers.tcp_proxy import TcpProxy


@dataclass
class SharedStore:
    name: str
    offsets: dict[str, Any]  # the `offsets:` of the replicas' config, through the proxy
    proxy: TcpProxy  # between the replicas and the engine: `cut()` is an outage
    direct: dict[str, Any]  # the same store reached directly, for the test's own reads

    def config(self) -> Any:
        return TypeAdapter(OffsetsConfig).validate_python(self.direct)


def _postgres() -> Iterator[SharedStore]:
    with postgres.temporary_database() as database, TcpProxy(postgres.PORT) as proxy:
        offsets = {
            "type": "postgres",
            "dsn": postgres.dsn(database, port=proxy.port),
            "connect_timeout": "2s",
        }
        direct = {**offsets, "dsn": postgres.dsn(database)}
        yield SharedStore("postgres", offsets, proxy, direct)


def _azure_blob() -> Iterator[SharedStore]:
    azurite, container = shared_azurite(), unique_container()
    with TcpProxy(azurite.port) as proxy:
        offsets = azurite.offsets(container, via=proxy.port, timeout="2s")
        yield SharedStore("azure_blob", offsets, proxy, azurite.offsets(container))


ENGINES = {"postgres": _postgres, "azure_blob": _azure_blob}


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Iterator[SharedStore]:
    yield from ENGINES[request.param]()
