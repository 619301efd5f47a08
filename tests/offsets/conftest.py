"""The offset-store engines the contract runs over (`tests/offsets/test_contract.py`).

An engine is one fixture parameter: a function yielding an `Engine`, which makes configs
of a fresh, empty store (each call the same store: replicas share it). Adding a store type
is one entry in `ENGINES`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.config import (
    AzureBlobOffsetsConfig,
    OffsetsConfig,
    PostgresOffsetsConfig,
    SqliteOffsetsConfig,
)
from bridge.offsets import OffsetStore, open_store
from tests.peers import postgres
from tests.peers.azurite import shared_azurite, unique_container


@dataclass
class Engine:
    name: str
    config: Callable[..., OffsetsConfig]  # keyword overrides of the store's settings
    leases: bool  # a shared store, for `ha:`


@contextlib.contextmanager
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    path = tmp_path / "state" / "offsets.db"
    yield Engine("sqlite", lambda **more: SqliteOffsetsConfig(path=path, **more), leases=False)


@contextlib.contextmanager
def postgres_engine(tmp_path: Path) -> Iterator[Engine]:
    with postgres.temporary_database() as database:

        def config(**more: Any) -> PostgresOffsetsConfig:
            return PostgresOffsetsConfig(type="postgres", dsn=postgres.dsn(database), **more)

        yield Engine("postgres", config, leases=True)


@contextlib.contextmanager
def azure_blob_engine(tmp_path: Path) -> Iterator[Engine]:
    azurite, container = shared_azurite(), unique_container()

    def config(**more: Any) -> AzureBlobOffsetsConfig:
        return AzureBlobOffsetsConfig.model_validate({**azurite.offsets(container), **more})

    yield Engine("azure_blob", config, leases=True)


ENGINES: dict[str, Callable[[Path], contextlib.AbstractContextManager[Engine]]] = {
    "sqlite": sqlite_engine,
    "postgres": postgres_engine,
    "azure_blob": azure_blob_engine,
}


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with ENGINES[request.param](tmp_path) as made:
        yield made


@pytest.fixture
def lease_engine(engine: Engine) -> Engine:
    if not engine.leases:
        pytest.skip(f"{engine.name} keeps no leases (single-host: `ha:` is refused with it)")
    return engine


@pytest.fixture
async def store(engine: Engine) -> Any:
    opened: OffsetStore = open_store(engine.config())
    yield opened
    await opened.close()
