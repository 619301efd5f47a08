"""Partitioned entities with duplicate detection (Standard entities created partitioned,
Premium namespaces created partitioned): Service Bus refuses batches of distinct messages
there, so the sink sends messages one by one, concurrently across studies, in order within
each, keeping the event id as message id (duplicate detection still drops re-sends)."""

from __future__ import annotations

import logging
from collections import defaultdict

import pytest

from bridge.core.sink import DELIVERED, Permanent, SinkFatalError, Transient
from sinks import create_sink
from sinks.servicebus.config import Config
from tests.factories import events
from tests.integration.servicebus.conftest import (
    QUEUE,
    run_pipeline,
    sink_config,
    stored_sequences,
)


def sink_for(peer, **options):
    return create_sink(Config.model_validate(sink_config(peer, **options)))


def assert_each_study_in_order(stored: list[dict], sent: list) -> None:
    """Every event stored once, with its id as message id, each study's in send order
    (studies go concurrently: no order between them)."""
    assert sorted(m["message_id"] for m in stored) == sorted(e.id for e in sent)
    study_of = {e.id: e.key for e in sent}
    for study in set(study_of.values()):
        ids = [e.id for e in sent if e.key == study]
        assert [m["message_id"] for m in stored if study_of[m["message_id"]] == study] == ids


def partitioned(peer, entity: str = QUEUE) -> None:
    peer.set_entity(entity, partitioned=True, duplicate_detection=True)


@pytest.mark.parametrize("options", [{}, {"sessions": True}], ids=["plain", "sessions"])
async def test_a_route_completes_on_a_partitioned_entity_in_study_order(
    simulator, peer, tmp_path, caplog, options
):
    partitioned(peer)
    sim = simulator(entries=400, seed=17)
    truth = sim.entries()
    caplog.set_level(logging.WARNING, logger="sinks.servicebus.sink")
    await run_pipeline(sim.url, tmp_path, sink_config(peer, **options))

    arrived = stored_sequences(peer)
    assert sorted(arrived) == [entry["sequence"] for entry in truth]  # each once
    study_of = {entry["sequence"]: entry["studyInstanceUid"] for entry in truth}
    expected: dict[str, list[int]] = defaultdict(list)
    received: dict[str, list[int]] = defaultdict(list)
    for entry in truth:
        expected[entry["studyInstanceUid"]].append(entry["sequence"])
    for sequence in arrived:
        received[study_of[sequence]].append(sequence)
    assert received == expected
    counters = peer.counters()
    assert counters["partitioned_refusals"] == 1  # the first batch; singly ever after
    assert counters["batches"] == 1
    [warning] = [
        r.getMessage()
        for r in caplog.records
        if r.name == "sinks.servicebus.sink" and r.levelno == logging.WARNING
    ]
    assert "partitioning and duplicate detection" in warning and "one by one" in warning


async def test_with_batching_off_nothing_is_refused_and_ids_are_kept(peer):
    partitioned(peer)
    sink = sink_for(peer, batching=False)
    sent = events(12)
    try:
        assert await sink.send(sent) == [DELIVERED] * 12
        assert await sink.send(sent[:5]) == [DELIVERED] * 5  # re-sent: detected, dropped
    finally:
        await sink.close()
    counters = peer.counters()
    assert counters["partitioned_refusals"] == counters["batches"] == 0
    assert counters["duplicates"] == 5
    assert_each_study_in_order(peer.messages(QUEUE), sent)


async def test_other_entities_of_the_namespace_still_get_batches(peer):
    partitioned(peer, "elsewhere")
    sink = sink_for(peer)
    try:
        assert await sink.send(events(10)) == [DELIVERED] * 10
    finally:
        await sink.close()
    assert peer.counters()["batches"] == 1
    assert peer.counters()["partitioned_refusals"] == 0


async def test_singly_a_study_stops_at_its_failure_and_the_others_go_on(peer):
    partitioned(peer)
    peer.set(max_message_size=4096)
    big = events(1, first=100, pad=8000)[0]  # refused for good
    sent = [*events(6)]
    sent.insert(2, big)
    sink = sink_for(peer, batching=False)
    try:
        outcomes = await sink.send(sent)
    finally:
        await sink.close()
    assert isinstance(outcomes[2], Permanent)
    assert [o for i, o in enumerate(outcomes) if i != 2] == [DELIVERED] * 6


async def test_an_outage_is_transient_for_each_study_and_the_retry_delivers(peer):
    partitioned(peer)
    sink = sink_for(peer, batching=False, send_timeout="3s")
    sent = events(8)
    try:
        await sink.open()
        peer.outage(None)
        down = await sink.send(sent)
        peer.restore()
        back = await sink.send(sent)
    finally:
        await sink.close()
    assert all(isinstance(outcome, Transient) for outcome in down)
    assert back == [DELIVERED] * 8
    assert_each_study_in_order(peer.messages(QUEUE), sent)


async def test_a_session_entity_refusing_sessionless_messages_is_still_fatal(peer):
    partitioned(peer)
    peer.set_entity(QUEUE, requires_session=True)
    sink = sink_for(peer, batching=False)
    try:
        with pytest.raises(SinkFatalError, match=r"needs `sessions: true`"):
            await sink.send(events(3))
    finally:
        await sink.close()
