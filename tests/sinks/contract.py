"""The sink contract: what every sink type promises its route, checked against its real peer.

Every test runs once per registered sink type (`sinks.SINK_TYPES`), through that type's
harness (`tests/sinks/<type>.py`). A sink type whose peer has no such failure declares it
and the test is skipped with the reason. What the route relies on:

- delivered: `Delivered` means the peer holds the event: once, body intact, with the event
  id where the transport carries one, each study's events in the order they were sent;
  also after `reopen()` (SIGHUP);
- transient: while the peer is unreachable, sends answer `Transient` (never `Delivered`,
  never an exception), and the route's retries deliver the same events, once, when it is
  back;
- permanent: an event the peer refuses for good is `Permanent` with a one-line reason, and
  the others of the send are delivered;
- fatal: a peer refusing the sink's credentials, or its destination gone, stops the sink
  with `SinkFatalError`, one line without a secret;
- close drains: `close()` after sends loses no acknowledged event and leaves nothing running
  (tasks, threads, processes, connections), also after a send was cancelled (the route's
  shutdown), an outage or a fatal refusal; it is harmless twice or on a sink never opened;
- ids stable: the same event sent twice carries the same id, what consumers de-duplicate on
  (a peer that drops duplicates itself, JetStream, holds it once);
- check probes: `check()` describes a reachable peer in one line and raises `SinkError`
  (one line, not fatal) for an unreachable one, within what `dicom-bridge check` allows,
  leaving nothing running either way (the command does not close the sink).

No secret of the sink's config appears in an outcome, an error, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import orjson
import pytest

from bridge.core.backoff import Backoff
from bridge.core.event import Event
from bridge.core.sink import DELIVERED, Permanent, Sink, SinkError, SinkFatalError, Transient
from bridge.delivery.sender import RouteStats, Sender
from tests.sinks.harness import Received, SinkHarness, make_events
from tests.sinks.leaks import Leftovers

T = TypeVar("T")

STUDIES = ("1.2.840.1", "1.2.840.2", "1.2.840.3")
#: Longest a send or close may take against a healthy peer (generous: a loaded machine).
DEADLINE = 30.0
#: What `dicom-bridge check` allows each sink's probe.
CHECK_DEADLINE = 15.0

log = logging.getLogger(__name__)


@pytest.fixture(autouse=True)
def _no_secret_logged(harness: SinkHarness, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    assert_no_secret(harness, caplog.text)  # messages and tracebacks


# -- helpers ----------------------------------------------------------------------------


async def within(awaitable: Awaitable[T], seconds: float = DEADLINE) -> T:
    return await asyncio.wait_for(awaitable, seconds)


def skip_if_declared(harness: SinkHarness, declaration: str) -> None:
    reason = getattr(harness, declaration)
    if reason is not None:
        pytest.skip(f"{harness.type} declares {declaration}: {reason}")


def assert_one_line(text: str) -> None:
    assert text.strip(), "an empty message"
    assert "\n" not in text, f"more than one line: {text!r}"


def assert_no_secret(harness: SinkHarness, *texts: str) -> None:
    for secret in harness.secrets:
        for text in texts:
            assert secret not in text, f"a secret shows in {text[:200]!r}"


def sequences(received: Iterable[Received], sent: Sequence[Event]) -> list[int]:
    """The sequence of each received message, matched to the sent event by its exact body
    (so a body changed on the way matches nothing), checking the id and key it travelled
    with against the event's."""
    by_body = {event.body: event for event in sent}
    found = []
    for message in received:
        event = by_body.get(message.body)
        assert event is not None, f"received what was not sent as is: {message.body[:120]!r}"
        if message.id is not None:
            assert message.id == event.id, f"sequence {event.entry.sequence}: wrong id"
        if message.key is not None:
            assert message.key == event.key, f"sequence {event.entry.sequence}: wrong key"
        found.append(event.entry.sequence)
    return found


def assert_held_once_in_order(harness: SinkHarness, sent: Sequence[Event]) -> None:
    """The peer holds each event once, and each study's in the order they were sent."""
    found = sequences(harness.received(), sent)
    assert sorted(found) == sorted(event.entry.sequence for event in sent)
    study = {event.entry.sequence: event.key for event in sent}
    per_study: dict[str, list[int]] = defaultdict(list)
    for sequence in found:
        per_study[study[sequence]].append(sequence)
    assert {key: order for key, order in per_study.items() if order != sorted(order)} == {}


async def opened(new_sink: Callable[[], Sink]) -> Sink:
    sink = new_sink()
    await within(sink.open())
    return sink


async def assert_nothing_left(leftovers: Leftovers, sink: Sink | None = None) -> None:
    """`sink` closed (if given) leaves nothing running that was not there before."""
    if sink is not None:
        await within(sink.close())
    left = await leftovers.check()
    assert left == []


async def never_given_up(event: Event, reason: str) -> None:
    pytest.fail(f"sequence {event.entry.sequence} given up: {reason}")


def route_sender(sink: Sink) -> Sender:
    """What a route sends with: retries with backoff (short here) until each event is
    delivered; none may be given up on."""
    return Sender(
        sink,
        backoff=Backoff(initial=0.05, maximum=0.5),
        max_elapsed=None,
        give_up=never_given_up,
        stats=RouteStats(),
        log=log,
    )


# -- the contract -----------------------------------------------------------------------


async def test_delivered_events_are_held_once_in_study_order_with_ids_and_bodies(harness, new_sink):
    sink = await opened(new_sink)
    first, second = make_events(1, 30, STUDIES), make_events(31, 30, STUDIES)
    assert await within(sink.send([])) == []
    assert await within(sink.send(first)) == [DELIVERED] * 30
    assert await within(sink.send(second)) == [DELIVERED] * 30
    assert_held_once_in_order(harness, first + second)  # delivered: held already


async def test_after_reopen_the_next_sends_are_delivered(harness, new_sink):
    sink = await opened(new_sink)
    first, second = make_events(1, 6, STUDIES), make_events(7, 6, STUDIES)
    assert await within(sink.send(first)) == [DELIVERED] * 6
    await within(sink.reopen())  # SIGHUP: let go of the files written
    assert await within(sink.send(second)) == [DELIVERED] * 6
    assert_held_once_in_order(harness, first + second)


async def test_an_unreachable_peer_is_transient_and_the_retries_deliver_once_it_is_back(
    harness, new_sink, leftovers
):
    skip_if_declared(harness, "no_outage")
    sink = await opened(new_sink)
    before = make_events(1, 6, STUDIES)
    assert await within(sink.send(before)) == [DELIVERED] * 6  # connected when it goes

    harness.take_down()
    during = make_events(7, 12, STUDIES)
    outcomes = await within(sink.send(during))  # an exception fails the test
    assert [type(outcome) for outcome in outcomes] == [Transient] * 12
    for outcome in outcomes:
        assert_one_line(outcome.reason)
        assert_no_secret(harness, outcome.reason)

    harness.bring_back()
    handled: set[int] = set()
    await within(route_sender(sink).deliver(during, handled.add))
    assert handled == set(range(12))
    assert_held_once_in_order(harness, before + during)
    await assert_nothing_left(leftovers, sink)  # what the outage broke included


async def test_a_sink_opened_while_its_peer_is_down_delivers_once_it_is_back(
    harness, new_sink, leftovers
):
    skip_if_declared(harness, "no_outage")
    harness.take_down()
    sink = new_sink()
    for _ in range(2):  # the route tries again and again, with its backoff
        try:
            await within(sink.open())  # some sinks connect at the first send only
        except SinkFatalError:
            raise
        except SinkError as exc:  # worth retrying: the route logs it and tries again
            assert_one_line(str(exc))
            assert_no_secret(harness, str(exc))

    harness.bring_back()
    async with asyncio.timeout(DEADLINE):
        while True:
            with contextlib.suppress(SinkError):
                await sink.open()
                break
            await asyncio.sleep(0.05)
    batch = make_events(1, 6, STUDIES)
    await within(route_sender(sink).deliver(batch, lambda index: None))
    assert_held_once_in_order(harness, batch)
    await assert_nothing_left(leftovers, sink)  # the failed opens included


async def test_an_event_refused_for_good_is_permanent_and_the_others_are_delivered(
    harness, new_sink
):
    skip_if_declared(harness, "no_permanent")
    sink = await opened(new_sink)
    before, after = make_events(1, 4, STUDIES), make_events(6, 4, STUDIES)
    refused = harness.refuse(5)
    outcomes = await within(sink.send([*before, refused, *after]))
    assert isinstance(outcomes[4], Permanent), outcomes[4]
    assert_one_line(outcomes[4].reason)
    assert_no_secret(harness, outcomes[4].reason)
    assert outcomes[:4] + outcomes[5:] == [DELIVERED] * 8
    assert_held_once_in_order(harness, before + after)


@pytest.mark.parametrize(
    ("refusal", "declaration"),
    [("refuse_credentials", "no_credentials"), ("remove_destination", "no_destination")],
    ids=["credentials-refused", "destination-gone"],
)
async def test_a_peer_refusing_the_sink_stops_it_with_one_line_without_secrets(
    harness, new_sink, leftovers, refusal, declaration
):
    skip_if_declared(harness, declaration)
    getattr(harness, refusal)()
    sink = new_sink()
    with pytest.raises(SinkFatalError) as failure:
        async with asyncio.timeout(DEADLINE):
            await sink.open()
            while True:  # some sinks learn of the refusal in the background
                outcomes = await sink.send(make_events(1, 3, STUDIES))
                assert DELIVERED not in outcomes
                await asyncio.sleep(0.05)
    assert_one_line(str(failure.value))
    assert_no_secret(harness, str(failure.value), repr(sink))
    await assert_nothing_left(leftovers, sink)  # the route closes a sink that stopped it
    assert harness.received() == []


async def test_close_after_sends_keeps_every_acknowledged_event_and_leaves_nothing_running(
    harness, new_sink, leftovers
):
    sink = await opened(new_sink)
    # Concurrent sends, as a route's batches in flight: never one study in two of them.
    batches = [make_events(1 + 20 * n, 20, (f"1.3.{n}.1", f"1.3.{n}.2")) for n in range(3)]
    results = await within(asyncio.gather(*(sink.send(batch) for batch in batches)))
    assert results == [[DELIVERED] * 20] * 3
    await assert_nothing_left(leftovers, sink)
    assert_held_once_in_order(harness, [event for batch in batches for event in batch])


async def test_close_after_a_cancelled_send_leaves_nothing_running(harness, new_sink, leftovers):
    sink = await opened(new_sink)
    warm = make_events(1, 3, STUDIES)
    assert await within(sink.send(warm)) == [DELIVERED] * 3  # connected
    batch = make_events(4, 60, STUDIES)
    sending = asyncio.create_task(sink.send(batch))
    # Let it get under way (its requests out); wherever the cancellation lands, the rest
    # of the test must hold.
    await asyncio.wait({sending}, timeout=0.005)
    sending.cancel()  # what a route's shutdown does to a send past its drain timeout
    with contextlib.suppress(asyncio.CancelledError):
        await within(sending)
    await assert_nothing_left(leftovers, sink)
    found = sequences(harness.received(), warm + batch)
    assert len(found) == len(set(found))  # delivered or not, never twice


async def test_the_same_event_sent_twice_carries_the_same_id(harness, new_sink):
    sink = await opened(new_sink)
    first = make_events(1, 6, STUDIES)
    again = make_events(1, 6, STUDIES)  # built anew from the same entries, as after a restart
    assert await within(sink.send(first)) == [DELIVERED] * 6
    assert await within(sink.send(again)) == [DELIVERED] * 6
    ids: dict[int, list[str]] = defaultdict(list)
    received = harness.received()
    for message, sequence in zip(received, sequences(received, first), strict=True):
        # What a consumer de-duplicates on: the transport's id, else the event's own.
        ids[sequence].append(message.id or orjson.loads(message.body)["id"])
    copies = 1 if harness.deduplicates else 2  # a peer dropping duplicates holds one
    assert ids == {event.entry.sequence: [event.id] * copies for event in first}


async def test_close_is_harmless_on_a_sink_never_opened_and_a_second_time(
    harness, new_sink, leftovers
):
    await within(new_sink().close())  # a route whose sink never opened shuts down
    sink = await opened(new_sink)
    assert await within(sink.send(make_events(1, 3, STUDIES))) == [DELIVERED] * 3
    await within(sink.close())
    await assert_nothing_left(leftovers, sink)


async def test_check_describes_a_reachable_peer_in_one_line(harness, new_sink, leftovers):
    sink = new_sink()
    line = await within(sink.check(), CHECK_DEADLINE)
    assert_one_line(line)
    assert_no_secret(harness, line, repr(sink))
    await assert_nothing_left(leftovers)  # `dicom-bridge check` does not close the sink


async def test_check_of_an_unreachable_peer_raises_one_line_in_time(harness, new_sink, leftovers):
    skip_if_declared(harness, "no_outage")
    harness.take_down()
    sink = new_sink()
    with pytest.raises(SinkError) as failure:
        await within(sink.check(), CHECK_DEADLINE)
    assert not isinstance(failure.value, SinkFatalError), "unreachable is worth retrying"
    assert_one_line(str(failure.value))
    assert_no_secret(harness, str(failure.value))
    await assert_nothing_left(leftovers)
