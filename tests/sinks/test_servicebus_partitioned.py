"""The sink contract once more for Service Bus, against a partitioned queue with duplicate
detection: the sink's first batch is refused and it sends one message per transfer from
then on, on several links (one per study being sent), which must keep the same promises.

The contract's "the same event sent twice" test is left out: duplicate detection on the
entity drops the second copy, as it should (the ids are those of the batching sink).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sinks import servicebus
from tests.sinks.contract import (  # noqa: F401 - collected here, against this harness
    _no_secret_logged,
    test_a_peer_refusing_the_sink_stops_it_with_one_line_without_secrets,
    test_a_sink_opened_while_its_peer_is_down_delivers_once_it_is_back,
    test_after_reopen_the_next_sends_are_delivered,
    test_an_event_refused_for_good_is_permanent_and_the_others_are_delivered,
    test_an_unreachable_peer_is_transient_and_the_retries_deliver_once_it_is_back,
    test_check_describes_a_reachable_peer_in_one_line,
    test_check_of_an_unreachable_peer_raises_one_line_in_time,
    test_close_after_a_cancelled_send_leaves_nothing_running,
    test_close_after_sends_keeps_every_acknowledged_event_and_leaves_nothing_running,
    test_close_is_harmless_on_a_sink_never_opened_and_a_second_time,
    test_delivered_events_are_held_once_in_study_order_with_ids_and_bodies,
)
from tests.sinks.harness import SinkHarness


class Harness(servicebus.Harness):
    def reset(self, workdir: Path) -> None:
        super().reset(workdir)
        self.peer.set_entity(self.queue, partitioned=True, duplicate_detection=True)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SinkHarness]:
    """Overrides the suite's fixture: this module runs the partitioned harness only."""
    harness = Harness()
    harness.start(tmp_path_factory.mktemp("servicebus-partitioned"))
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture(autouse=True)
def _refused_batches_then_singles(started: SinkHarness) -> Iterator[None]:
    yield
    counters = started.peer.counters()
    assert counters["batches"] <= counters["partitioned_refusals"]  # none stored
