"""Shared fixtures, and the network guard over the whole test session (`network_guard`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.core import redact
from bridge.runtime.logs import JsonFormatter, TextFormatter
from tests import network_guard as guard
from tests.peers.simulator import SimulatorProcess

# pytester: the network guard's own test runs a pytest session; tests.peers.azurite: the
# Azurite fixtures (azurite, azurite_container, azurite_offsets, start_azurite).
pytest_plugins = ["pytester", "tests.peers.azurite"]

_GUARD_LOG = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    if _distributing(config):
        return  # each pytest-xdist worker guards the processes it starts itself
    config.stash[_GUARD_LOG] = guard.install()


def _distributing(config: pytest.Config) -> bool:
    """This process hands the tests to pytest-xdist workers (which it starts: they must not
    inherit the guard of the processes tests start, which would refuse their own tests'
    connections before pytest-socket does)."""
    workers = config.getoption("numprocesses", None)
    return bool(workers) and not hasattr(config, "workerinput")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _GUARD_LOG in config.stash:
        config.stash[_GUARD_LOG].unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def network_guard(pytestconfig: pytest.Config) -> Iterator[guard.NetworkGuard]:
    """Fails the test if it, or a process it started, tried to leave loopback. A test that
    means to try takes the refusals it expects with `network_guard.take()`."""
    watching = guard.NetworkGuard(pytestconfig.stash[_GUARD_LOG])
    yield watching
    watching.close()
    refused = watching.take()
    if refused:
        pytest.fail("the test tried to leave loopback:\n" + "\n".join(refused), pytrace=False)


@pytest.fixture(autouse=True)
def _own_secret_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secrets registry is process-wide: each test scrubs the secrets it configured,
    not those of the tests before it."""
    monkeypatch.setattr(redact, "_REGISTRY", redact.Redactor())


@pytest.fixture(autouse=True)
def _own_root_logging() -> Iterator[None]:
    """A command run in-process installs the bridge's handler on the root logger, writing
    to that test's (captured, later closed) stderr with its repeat counter; the tests after
    it must neither write there nor inherit its counts."""
    root = logging.getLogger()
    level = root.level
    yield
    root.handlers[:] = [
        handler
        for handler in root.handlers
        if not isinstance(handler.formatter, TextFormatter | JsonFormatter)
    ]
    root.setLevel(level)


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
