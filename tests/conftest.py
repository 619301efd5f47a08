"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge import redact
from tests.peers.simulator import SimulatorProcess


@pytest.fixture(autouse=True)
def _own_secret_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secrets registry is process-wide: each test scrubs the secrets it configured,
    not those of the tests before it."""
    monkeypatch.setattr(redact, "_REGISTRY", redact.Redactor())


@pytest.fixture
def simulator() -> Iterator[Callable[..., SimulatorProcess]]:
    """Factory: `simulator(entries=100, seed=1, **cli_options)` -> a started simulator
    subprocess; every one started is stopped when the test ends."""
    started: list[SimulatorProcess] = []

    def start(*arguments: str, **options: Any) -> SimulatorProcess:
        process = SimulatorProcess(*arguments, **options)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.close()
