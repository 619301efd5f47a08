"""The fast chaos subset of `make test`: a few thousand entries per scenario, four sinks,
every invariant of `invariants.py` (`make chaos` runs the long version)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.invariants import Result
from tests.chaos.peers import ChaosPeers
from tests.chaos.plan import FAST

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared_peers() -> Iterator[ChaosPeers]:
    with ChaosPeers() as started:
        yield started


@pytest.fixture
def peers(shared_peers: ChaosPeers) -> Iterator[ChaosPeers]:
    yield shared_peers
    shared_peers.heal()  # whatever a failed scenario left behind


@pytest.mark.parametrize("scenario", list(FAST))
def test_scenario_keeps_every_invariant(peers, tmp_path, scenario):
    result: Result = FAST[scenario](peers, tmp_path)
    if result.skipped:
        pytest.skip(result.skipped)
    assert result.ok, "\n".join(result.violations)
