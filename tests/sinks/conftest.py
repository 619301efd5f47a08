"""Fixtures of the sink contract suite: every registered sink type's harness, its peer
started once per module, a destination of its own per test, and sinks closed after it.

`contract.py` is collected as a test module (with pytest's assertion rewriting) although its
name does not start with `test_`: it is the checklist, named for what it is."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bridge.core.sink import Sink
from sinks import SINK_TYPES, config_models, create_sink
from tests.sinks.harness import SinkHarness, load
from tests.sinks.leaks import Leftovers

pytest.register_assert_rewrite("tests.sinks.contract")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.name == "contract.py" and file_path.parent == Path(__file__).parent:
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def has_harness(sink_type: str) -> bool:
    return importlib.util.find_spec(f"tests.sinks.{sink_type}") is not None


@pytest.fixture(scope="module", params=sorted(SINK_TYPES))
def started(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SinkHarness]:
    """Each sink type's harness with its peer running, for the whole module."""
    sink_type = request.param
    if not has_harness(sink_type):
        pytest.fail(
            f"sink type {sink_type!r} has no contract harness: add tests/sinks/{sink_type}.py "
            "(see tests/sinks/README.md)",
            pytrace=False,
        )
    harness = load(sink_type)
    harness.start(tmp_path_factory.mktemp(sink_type))
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def harness(started: SinkHarness, tmp_path: Path) -> SinkHarness:
    """The harness, its peer up, with a destination of this test's own."""
    started.reset(tmp_path)
    return started


@pytest.fixture
async def new_sink(harness: SinkHarness) -> AsyncIterator[Callable[[], Sink]]:
    """Factory: a sink of the harness's type for its destination (not opened); each one
    made is closed when the test ends."""
    made: list[Sink] = []

    def build() -> Sink:
        config = config_models()[harness.type].model_validate(harness.config())
        sink = create_sink(config)
        made.append(sink)
        return sink

    yield build
    for sink in made:
        with contextlib.suppress(Exception):
            await sink.close()


@pytest.fixture
async def leftovers(harness: SinkHarness) -> AsyncIterator[Leftovers]:
    """What exists once the peer is ready; `check()` lists what a sink left behind."""
    watching = Leftovers(harness.peer_threads)
    yield watching
    watching.release()
