"""Route behaviour with in-process fakes: retries, dead letters, failures, order, cursor."""

from __future__ import annotations

import asyncio
import contextlib
import random

import orjson
import pytest

from bridge.config import SqliteOffsetsConfig
from bridge.core.entry import parse_entry
from bridge.core.sink import DELIVERED, Permanent, SinkFatalError, Transient
from bridge.delivery.format import Formatter
from bridge.delivery.route import Route
from bridge.feed import Page
from bridge.offsets import open_store
from sinks import SinkConfig
from tests.factories import entry


class ListReader:
    """Serves fixed pages, then stays caught up."""

    initial = 0

    def __init__(self, entries, page_size=10):
        self.entries = entries
        self.page_size = page_size

    encode = staticmethod(lambda position: (str(position), position))
    decode = staticmethod(int)

    async def pages(self, cursor):
        latest = self.entries[-1].sequence if self.entries else 0
        rest = [e for e in self.entries if (e.sequence or 0) > cursor or e.poison]
        for start in range(0, len(rest), self.page_size):
            chunk = rest[start : start + self.page_size]
            position = max(e.position for e in chunk)
            yield Page(chunk, position, position >= latest, latest)
        while True:
            yield Page([], latest, True, latest)
            await asyncio.sleep(3600)


class ScriptedSink:
    """Records what it delivered; `behave(event, attempt)` picks each outcome."""

    def __init__(self, name="sink", behave=None, delay=0.0):
        self.name = name
        self.behave = behave or (lambda event, attempt: DELIVERED)
        self.delivered = []
        self.attempts: dict[str, int] = {}
        self.delay = delay
        self.in_flight_keys: set[str] = set()
        self.overlaps = 0

    async def open(self):
        return None

    async def send(self, events):
        keys = {e.key for e in events}
        self.overlaps += bool(keys & self.in_flight_keys)
        self.in_flight_keys |= keys
        await asyncio.sleep(self.delay * random.random())
        self.in_flight_keys -= keys
        outcomes = []
        for event in events:
            attempt = self.attempts.get(event.id, 0)
            self.attempts[event.id] = attempt + 1
            outcome = self.behave(event, attempt)
            if outcome is DELIVERED:
                self.delivered.append(event)
            outcomes.append(outcome)
        return outcomes

    async def check(self):
        return "ok"

    async def close(self):
        return None


def route_for(tmp_path, entries, sink, *, dead_letter=None, **config):
    settings = {"name": "r", "type": "test", "retry": {"initial": "1ms", "max": "5ms"}, **config}
    sink_config = SinkConfig.model_validate(settings)
    store = open_store(SqliteOffsetsConfig(path=tmp_path / "offsets.db"))
    return Route(
        name="r",
        config=sink_config,
        sink=sink,
        dead_letter=dead_letter,
        reader=ListReader(entries),
        formatter=Formatter("http://feed.test"),
        store=store,
        feed_key="http://feed.test",
        commit_interval=0.05,
    )


async def run_until_caught_up(route, timeout=10.0):
    await route.start()

    async def wait():
        while not (route.caught_up or route.failure):
            await asyncio.sleep(0.005)

    try:
        await asyncio.wait_for(wait(), timeout)
    finally:
        route.stop_intake()
        await route.close()


def sequences(events):
    return [event.entry.sequence for event in events]


async def test_transient_failures_are_retried_in_study_order(tmp_path):
    entries = [entry(s) for s in range(1, 201)]
    flaky = ScriptedSink(
        behave=lambda e, attempt: (
            Transient("busy") if attempt < 2 and e.entry.sequence % 7 == 0 else DELIVERED
        ),
        delay=0.002,
    )
    route = route_for(tmp_path, entries, flaky, batch_size=7, max_in_flight=4)
    await run_until_caught_up(route)
    assert sorted(set(sequences(flaky.delivered))) == list(range(1, 201))
    # The last copy of each event (what a consumer ends up with) is in study order.
    last_copy = {event.entry.sequence: index for index, event in enumerate(flaky.delivered)}
    by_study: dict[int, list[int]] = {}
    for sequence in sorted(last_copy, key=last_copy.get):
        by_study.setdefault(sequence % 5, []).append(sequence)
    assert all(seq == sorted(seq) for seq in by_study.values())
    assert flaky.overlaps == 0  # never two batches of one study in flight
    assert route.committed == 200 and route.stats.retries > 0


async def test_permanent_failures_and_poison_go_to_the_dead_letter_target(tmp_path):
    entries = [entry(1), entry(2), parse_entry({"sequence": "bad"}), entry(4)]
    entries[2].position = 2
    sink = ScriptedSink(
        behave=lambda e, _: Permanent("too large") if e.entry.sequence == 2 else DELIVERED
    )
    dlq = ScriptedSink("dlq")
    route = route_for(tmp_path, entries, sink, dead_letter=dlq)
    await run_until_caught_up(route)
    assert sequences(sink.delivered) == [1, 4]
    records = {r["reason"]: r for r in (orjson.loads(event.body) for event in dlq.delivered)}
    assert set(records) == {"too large", "invalid or missing sequence: 'bad'"}
    assert records["too large"]["event"]["data"]["sequence"] == 2
    assert records["too large"]["sink"] == "r"
    assert records["invalid or missing sequence: 'bad'"]["entry"] == {"sequence": "bad"}
    assert route.committed == 4 and route.stats.dead_lettered == 2


async def test_without_a_dead_letter_target_a_rejection_stops_the_route(tmp_path):
    entries = [entry(s) for s in range(1, 11)]
    sink = ScriptedSink(
        behave=lambda e, _: Permanent("rejected") if e.entry.sequence == 5 else DELIVERED
    )
    route = route_for(tmp_path, entries, sink, batch_size=1, max_in_flight=1)
    await run_until_caught_up(route)
    assert "sequence 5 was not delivered (rejected)" in route.failure
    assert route.committed == 4  # the cursor stays before the rejected entry


async def test_a_fatal_sink_error_stops_the_route_and_keeps_its_cursor(tmp_path):
    entries = [entry(s) for s in range(1, 11)]

    def behave(event, attempt):
        if event.entry.sequence == 6:
            raise SinkFatalError("authentication failed for sink r")
        return DELIVERED

    sink = ScriptedSink(behave=behave)
    route = route_for(tmp_path, entries, sink, batch_size=1, max_in_flight=1)
    await run_until_caught_up(route)
    assert route.failure == "authentication failed for sink r"
    assert route.committed == 5


async def test_filtered_entries_advance_the_cursor(tmp_path):
    entries = [entry(s, action="Delete" if s % 2 else "Create") for s in range(1, 21)]
    sink = ScriptedSink()
    route = route_for(tmp_path, entries, sink, filter={"actions": ["Delete"]})
    await run_until_caught_up(route)
    assert sequences(sink.delivered) == list(range(1, 21, 2))
    assert route.committed == 20 and route.stats.filtered == 10


async def test_the_cursor_survives_a_restart(tmp_path):
    entries = [entry(s) for s in range(1, 31)]
    first = ScriptedSink()
    await run_until_caught_up(route_for(tmp_path, entries, first))
    entries += [entry(s) for s in range(31, 41)]
    second = ScriptedSink()
    await run_until_caught_up(route_for(tmp_path, entries, second))
    assert sequences(second.delivered) == list(range(31, 41))


async def test_an_unexpected_sink_exception_is_retried_not_counted_as_delivered(tmp_path):
    calls = 0

    def behave(event, attempt):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug in a client library")
        return DELIVERED

    sink = ScriptedSink(behave=behave)
    route = route_for(tmp_path, [entry(1)], sink)
    await run_until_caught_up(route)
    assert sequences(sink.delivered) == [1] and route.committed == 1


@pytest.mark.parametrize("max_pending", [1, 3])
async def test_memory_is_bounded_by_max_pending(tmp_path, max_pending):
    entries = [entry(s) for s in range(1, 50)]
    sink = ScriptedSink(delay=0.001)
    route = route_for(tmp_path, entries, sink, max_pending=max_pending, batch_size=1)
    peak = 0
    await route.start()
    while not route.caught_up:
        peak = max(peak, len(route.tracker))
        await asyncio.sleep(0)
    route.stop_intake()
    await route.close()
    assert peak <= max_pending


async def test_memory_is_bounded_by_max_pending_bytes(tmp_path):
    """Entries with metadata: the byte bound admits far fewer than max_pending, and one event
    larger than the bound still goes through alone."""
    entries = [entry(s, metadata={"00100010": "x" * 2_000}) for s in range(1, 40)]
    entries.append(entry(40, metadata={"00100010": "x" * 20_000}))
    sink = ScriptedSink(delay=0.001)
    route = route_for(tmp_path, entries, sink, max_pending_bytes="10KB", batch_size=1)
    peak_bytes = peak_slots = 0
    await route.start()
    while not route.caught_up:
        peak_bytes = max(peak_bytes, route.tracker.bytes)
        peak_slots = max(peak_slots, len(route.tracker))
        await asyncio.sleep(0)
    route.stop_intake()
    await route.close()
    assert sorted(sequences(sink.delivered)) == list(range(1, 41))
    assert peak_slots <= 6  # 10 KB of ~2.5 KB events, plus the one admitted below the limit
    assert peak_bytes < 10_000 + 21_000  # over the bound by one event at the most


class SwallowingSink(ScriptedSink):
    """A peer that is down, behind a client library that answers a cancelled call with a
    connection error instead of raising CancelledError (the Service Bus SDK does, through
    Python 3.11's asyncio.wait_for; found by the chaos suite)."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing
        self.inside = asyncio.Event()

    async def _refused(self) -> None:
        self.inside.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.01)
        raise ConnectionRefusedError("connection refused")

    async def open(self):
        if self.failing == "open":
            await self._refused()

    async def send(self, events):
        await self._refused()


@pytest.mark.parametrize("failing", ["open", "send"])
async def test_closing_stops_retrying_even_when_the_sink_swallows_the_cancellation(
    tmp_path, failing
):
    sink = SwallowingSink(failing)
    route = route_for(tmp_path, [entry(s) for s in range(1, 20)], sink)
    await route.start()
    await sink.inside.wait()
    await asyncio.wait_for(route.close(), 2)  # the route retried forever before the fix
    assert route.committed == 0


# -- retry budget (retry.max_elapsed) -------------------------------------------------------


def dead_lettered(dlq: ScriptedSink) -> dict[int, str]:
    """Sequence -> reason of the records a dead-letter sink received."""
    records = (orjson.loads(event.body) for event in dlq.delivered)
    return {record["sequence"]: record["reason"] for record in records}


async def test_events_failing_transiently_past_the_budget_are_dead_lettered(tmp_path):
    entries = [entry(s) for s in range(1, 21)]
    down = ScriptedSink(behave=lambda e, _: Transient("503 from the peer"))
    dlq = ScriptedSink("dlq")
    retry = {"initial": "1ms", "max": "5ms", "max_elapsed": "100ms"}
    route = route_for(tmp_path, entries, down, dead_letter=dlq, retry=retry, batch_size=5)
    await run_until_caught_up(route)
    reasons = dead_lettered(dlq)
    assert sorted(reasons) == list(range(1, 21))
    assert all(
        reason.startswith("503 from the peer (still failing after retry.max_elapsed 0.1s")
        for reason in reasons.values()
    )
    assert route.committed == 20 and route.stats.dead_lettered == 20
    assert min(down.attempts.values()) >= 2  # retried before giving up


async def test_without_a_dead_letter_target_the_budget_stops_the_route(tmp_path):
    entries = [entry(s) for s in range(1, 11)]
    sink = ScriptedSink(
        behave=lambda e, _: Transient("timed out") if e.entry.sequence == 4 else DELIVERED
    )
    retry = {"initial": "1ms", "max": "5ms", "max_elapsed": "50ms"}
    route = route_for(tmp_path, entries, sink, retry=retry, batch_size=1, max_in_flight=1)
    await run_until_caught_up(route)
    assert "sequence 4 was not delivered (timed out (still failing after" in route.failure
    assert "no dead_letter target" in route.failure
    assert route.committed == 3  # the cursor stays before it


async def test_only_the_failing_event_is_dead_lettered_not_those_held_behind_it(tmp_path):
    """Later events of its study are re-sent after it for order; at the budget they count
    as delivered, since the peer took them."""
    entries = [entry(s, studies=1) for s in range(1, 6)]
    sink = ScriptedSink(
        behave=lambda e, _: Transient("refused") if e.entry.sequence == 2 else DELIVERED
    )
    dlq = ScriptedSink("dlq")
    retry = {"initial": "1ms", "max": "5ms", "max_elapsed": "50ms"}
    route = route_for(tmp_path, entries, sink, dead_letter=dlq, retry=retry)
    await run_until_caught_up(route)
    assert list(dead_lettered(dlq)) == [2]
    assert set(sequences(sink.delivered)) == {1, 3, 4, 5}
    assert route.committed == 5 and route.stats.forwarded == 4


async def test_failures_within_the_budget_are_retried_until_delivered(tmp_path):
    entries = [entry(s) for s in range(1, 11)]
    flaky = ScriptedSink(behave=lambda e, attempt: Transient("busy") if attempt < 3 else DELIVERED)
    dlq = ScriptedSink("dlq")
    retry = {"initial": "1ms", "max": "5ms", "max_elapsed": "10s"}
    route = route_for(tmp_path, entries, flaky, dead_letter=dlq, retry=retry)
    await run_until_caught_up(route)
    assert sorted(sequences(flaky.delivered)) == list(range(1, 11)) and dlq.delivered == []
