"""The contract's checklist: every registered sink type has a complete harness."""

from __future__ import annotations

import pytest

from sinks import SINK_TYPES
from tests.sinks.conftest import has_harness
from tests.sinks.harness import SinkHarness, load


def test_every_registered_sink_type_has_a_harness():
    missing = [name for name in sorted(SINK_TYPES) if not has_harness(name)]
    assert missing == [], "add tests/sinks/<type>.py for each (see tests/sinks/README.md)"


@pytest.mark.parametrize("sink_type", sorted(SINK_TYPES))
def test_a_harness_is_complete_and_declares_what_its_peer_cannot_do(sink_type):
    harness = load(sink_type)  # an abstract method left out fails here
    assert isinstance(harness, SinkHarness)
    overridden = {
        "no_outage": ("take_down", "bring_back"),
        "no_permanent": ("refuse",),
        "no_credentials": ("refuse_credentials",),
        "no_destination": ("remove_destination",),
    }
    for declaration, methods in overridden.items():
        declared = getattr(harness, declaration) is not None
        for method in methods:
            provided = getattr(type(harness), method) is not getattr(SinkHarness, method)
            assert provided != declared, (
                f"{sink_type}: {method} " + ("and " if declared else "or ") + declaration
            )
