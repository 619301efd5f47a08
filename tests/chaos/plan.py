"""Which scenarios run, and how large: `FAST` in `make test` (pytest, a few thousand
entries each), `LONG` in `make chaos` (the acceptance run: a 50,000-entry kill storm with
at least 50 SIGKILLs mid-run, then every fault family)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from tests.chaos.faults import OUTAGES
from tests.chaos.invariants import Result
from tests.chaos.outages import combined, offset_store_full, sink_outage
from tests.chaos.peers import ChaosPeers
from tests.chaos.routes import Tuning
from tests.chaos.scenarios import feed_faults, kill_storm, sigterm_under_load

Scenario = Callable[[ChaosPeers, Path], Result]

FAST: dict[str, Scenario] = {
    "kill-storm": partial(kill_storm, entries=10_000, kills=4, window=(0.3, 2.0), required=4),
    "feed-faults": partial(feed_faults, entries=3_000, spikes=2, spike_seconds=2.0),
    "outage-kafka": partial(sink_outage, kind="kafka", entries=8_000, before=2, seconds=3),
    "outage-file-full": partial(sink_outage, kind="file-full", entries=8_000, before=2, seconds=3),
    "offset-store-full": partial(offset_store_full, entries=4_000),
    "sigterm": partial(sigterm_under_load, entries=20_000, stops=2),
}

LONG: dict[str, Scenario] = {
    "kill-storm": partial(
        kill_storm,
        entries=50_000,
        kills=60,
        required=50,
        tuning=Tuning(max_pending=2_000, prefetch=2),
        latency_ms=250,  # about 700 entries/s: 60 lives of ~2 s cannot finish 50,000
    ),
    "feed-faults": partial(feed_faults, entries=20_000, spikes=4),
    **{
        f"outage-{kind}": partial(sink_outage, kind=kind, entries=20_000, before=5, seconds=10)
        for kind in OUTAGES
    },
    "offset-store-full": partial(offset_store_full, entries=20_000),
    "sigterm": partial(sigterm_under_load, entries=40_000, stops=4),
    "combined": partial(combined, entries=30_000, cycles=15),
}
