"""The feed client and readers against the simulator over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.core.backoff import Backoff
from bridge.feed import (
    METADATA_UNAVAILABLE,
    BearerToken,
    FeedClient,
    FeedRequestError,
    FeedResetError,
    FeedSource,
    SequenceReader,
    TimeWindowReader,
)
from tests.peers.simulator import ControlError, SimulatorProcess

FAST = Backoff(initial=0.005, maximum=0.05)
FAULTS = {
    "rate_429": 0.01,
    "rate_500": 0.015,
    "rate_503": 0.015,
    "truncate_rate": 0.005,
    "disconnect_rate": 0.005,
    "retry_after": 0,
}


def source_for(url, api_version="v1", page_size=100, include_metadata=False, **client_options):
    client_options.setdefault("backoff", FAST)
    client = FeedClient(url, api_version, **client_options)
    return FeedSource(client, page_size=page_size, include_metadata=include_metadata)


async def read_all(reader, position=None, timeout=60.0):
    """Every entry until the reader reports it caught up."""
    entries = []

    async def consume():
        async for page in reader.pages(reader.initial if position is None else position):
            entries.extend(page.entries)
            if page.caught_up:
                return

    await asyncio.wait_for(consume(), timeout)
    return entries


async def test_v1_exactly_once_in_order_with_wide_gaps_and_faults(simulator):
    sim = simulator(entries=20_000, seed=11, gap_rate=0.02, max_gap=1000, **FAULTS)
    truth = sim.entries()
    sequences = [e["sequence"] for e in truth]
    assert max(b - a for a, b in itertools.pairwise(sequences)) > 100  # gaps wider than a page
    source = source_for(sim.url, fallback_after=4)
    try:
        entries = await read_all(SequenceReader(source, prefetch=8, poll_interval=0.05))
    finally:
        await source.close()
    assert [e.sequence for e in entries] == sequences
    assert [e.raw for e in entries] == truth
    faults = sim.stats()["requests"]["/v1/changefeed"]
    assert set(faults) >= {"429", "500", "503"}, faults


async def test_v2_every_sequence_at_least_once_and_never_twice(simulator):
    sim = simulator(
        entries=8_000, seed=12, gap_rate=0.02, max_gap=1000, reorder_rate=0.05, **FAULTS
    )
    truth = sim.entries(order="time")
    source = source_for(sim.url, "v2", page_size=200, fallback_after=4)
    try:
        entries = await read_all(TimeWindowReader(source, poll_interval=0.05, safety_lag=60))
    finally:
        await source.close()
    got = [e.sequence for e in entries]
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(e["sequence"] for e in truth)
    assert got == [e["sequence"] for e in truth]  # (timestamp, sequence) order


async def test_empty_feed_latest_is_204_and_readers_are_caught_up(simulator):
    sim = simulator(entries=0)
    response = sim.feed("/v1/changefeed/latest")
    assert response.status_code == 204 and response.content == b""
    for version, reader_type in (("v1", SequenceReader), ("v2", TimeWindowReader)):
        source = source_for(sim.url, version)
        try:
            reader = reader_type(source, poll_interval=0.01)
            pages = reader.pages(reader.initial)
            page = await anext(pages)
            await pages.aclose()
        finally:
            await source.close()
        assert page.caught_up and page.entries == [] and page.latest == 0


async def test_a_service_reset_is_reported_not_looped(simulator):
    sim = simulator(entries=500, seed=3)
    cursor = sim.entries()[-1]["sequence"]
    sim.reset(entries=50, seed=4)  # the service was restored from an older backup
    for version in ("v1", "v2"):
        source = source_for(sim.url, version)
        try:
            reader = (
                SequenceReader(source, poll_interval=0.01)
                if version == "v1"
                else TimeWindowReader(source, poll_interval=0.01)
            )
            position = (
                cursor
                if version == "v1"
                else TimeWindowReader.decode(
                    f'{{"timestamp": "2030-01-01T00:00:00+00:00", "sequence": {cursor}}}'
                )
            )
            with pytest.raises(FeedResetError, match="reset or restored"):
                await read_all(reader, position)
        finally:
            await source.close()


@pytest.mark.parametrize("options, status", [({"token": "right"}, 401), ({"forbidden": True}, 403)])
async def test_refusals_fail_with_one_line(simulator, options, status):
    sim = simulator(entries=10, **options)
    source = source_for(sim.url, auth=BearerToken("wrong-token-value"))
    try:
        with pytest.raises(FeedRequestError) as caught:
            await read_all(SequenceReader(source, poll_interval=0.01))
    finally:
        await source.close()
    assert caught.value.status == status
    assert "\n" not in str(caught.value) and "wrong-token-value" not in str(caught.value)
    assert sim.url in str(caught.value)


async def test_the_right_token_is_accepted(simulator):
    sim = simulator(entries=30, seed=5, token="right-token")
    source = source_for(sim.url, auth=BearerToken("right-token"))
    try:
        entries = await read_all(SequenceReader(source, poll_interval=0.01))
    finally:
        await source.close()
    assert len(entries) == 30


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_missing_metadata_blob_does_not_stall_the_reader(simulator, version):
    sim = simulator(entries=300, seed=6)
    truth = sim.entries(include_metadata=True)
    victim = next(e for e in truth if e["state"] == "Current" and e["sequence"] > 100)
    sim.set_metadata_missing(
        victim["studyInstanceUid"], victim["seriesInstanceUid"], victim["sopInstanceUid"]
    )
    source = source_for(sim.url, version, include_metadata=True, fallback_after=2)
    try:
        reader = (
            SequenceReader(source, poll_interval=0.01)
            if version == "v1"
            else TimeWindowReader(source, poll_interval=0.01, safety_lag=60)
        )
        entries = await read_all(reader)
    finally:
        await source.close()
    assert sorted(e.sequence for e in entries) == sorted(e["sequence"] for e in truth)
    flagged = [e for e in entries if METADATA_UNAVAILABLE in e.flags]
    assert [e.sop for e in flagged] == [victim["sopInstanceUid"]] * len(flagged) and flagged
    assert all("metadata" not in e.raw for e in flagged)
    others = [e for e in entries if e.sop != victim["sopInstanceUid"]]
    assert all(("metadata" in e.raw) == (e.state in ("Current", "Replaced")) for e in others)


async def test_v1_waits_for_rows_still_committing(simulator):
    sim = simulator(entries=20, seed=8)
    held = sim.store(generate={"studies": 1, "series": 1, "instances": 1}, hold=True)
    sim.store(generate={"studies": 1, "series": 1, "instances": 1})  # commits after the held one
    source = source_for(sim.url, page_size=100)
    try:
        reading = asyncio.create_task(read_all(SequenceReader(source, poll_interval=0.01)))
        done, _ = await asyncio.wait([reading], timeout=0.3)
        assert not done  # the window read blocks on the uncommitted row (HOLDLOCK)
        sim.commit()
        entries = await reading
    finally:
        await source.close()
    assert held["entries"][0]["sequence"] in [e.sequence for e in entries]
    assert len(entries) == 22


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("store"), st.integers(1, 3), st.integers(1, 8)),
        st.tuples(
            st.just("delete"), st.sampled_from(["study", "series", "sop"]), st.integers(0, 99)
        ),
        st.tuples(st.just("update"), st.just("study"), st.integers(0, 99)),
        st.tuples(st.just("restore"), st.just("study"), st.integers(0, 99)),
        st.tuples(st.just("gap"), st.integers(1, 450), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@pytest.fixture(scope="module")
def shared_simulator():
    with SimulatorProcess(entries=0) as sim:
        yield sim


def apply(sim, operations):
    stored: list[dict] = []
    for kind, a, b in operations:
        if kind == "store":
            stored += sim.store(generate={"studies": 1, "series": a, "instances": b})["entries"]
        elif kind == "gap":
            sim.gap(a)
        elif stored:
            target = stored[b % len(stored)]
            study = target["studyInstanceUid"]
            series = target["seriesInstanceUid"] if a in ("series", "sop") else None
            sop = target["sopInstanceUid"] if a == "sop" else None
            with contextlib.suppress(ControlError):  # e.g. nothing deleted to restore
                getattr(sim, kind)(study, series, sop)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS, page_size=st.integers(1, 100))
async def test_any_operation_history_is_read_completely(shared_simulator, operations, page_size):
    sim = shared_simulator
    sim.reset(entries=0)
    apply(sim, operations)
    truth = sim.entries()
    for version in ("v1", "v2"):
        source = source_for(sim.url, version, page_size=page_size)
        try:
            reader = (
                SequenceReader(source, prefetch=3, poll_interval=0.01)
                if version == "v1"
                else TimeWindowReader(source, poll_interval=0.01, safety_lag=0)
            )
            entries = await read_all(reader)
        finally:
            await source.close()
        got = [e.sequence for e in entries]
        if version == "v1":
            assert got == [e["sequence"] for e in truth]
            assert [e.raw for e in entries] == truth
        else:
            assert len(got) == len(set(got)) and sorted(got) == [e["sequence"] for e in truth]
