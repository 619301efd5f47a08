"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.peers.simulator import SimulatorProcess


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
