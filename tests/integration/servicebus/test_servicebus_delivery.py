"""Simulator → bridge (in process) → Service Bus sink → the AMQP peer, read back with the
SDK's receiver: every sequence arrives, with the message fields the config asks for."""

from __future__ import annotations

from collections import defaultdict

from azure.servicebus.aio import ServiceBusClient

from bridge.core.sink import DELIVERED
from sinks import create_sink
from sinks.servicebus.config import Config
from tests.factories import events
from tests.integration.servicebus.conftest import (
    QUEUE,
    receive_all,
    receive_session,
    run_pipeline,
    sink_config,
)

STRUCTURED = "application/cloudevents+json; charset=utf-8"


def event_id(url: str, entry: dict) -> str:
    return f"{url.split('://')[1]}/{entry['partitionName']}/{entry['sequence']}"


async def test_structured_events_carry_ids_sessions_and_the_entry(simulator, peer, tmp_path):
    sim = simulator(entries=300, seed=3)
    truth = sim.entries()
    await run_pipeline(sim.url, tmp_path, sink_config(peer, sessions=True, time_to_live="1h"))

    received = await receive_all(peer, peer.stats()["queues"][QUEUE])
    by_sequence = {m["json"]["data"]["sequence"]: m for m in received}
    assert sorted(by_sequence) == [entry["sequence"] for entry in truth]
    types = {"Create": "created", "Update": "updated", "Delete": "deleted"}
    for entry in truth:
        message = by_sequence[entry["sequence"]]
        assert message["message_id"] == event_id(sim.url, entry)
        assert message["session_id"] == entry["studyInstanceUid"]
        assert message["subject"] == f"dicom.instance.{types[entry['action']]}"
        assert message["content_type"] == STRUCTURED
        assert message["time_to_live"].total_seconds() == 3600
        assert message["application_properties"] == {}
        assert message["json"]["id"] == message["message_id"]
        assert message["json"]["data"] == entry


async def test_binary_mode_puts_attributes_in_cloudevents_properties(simulator, peer, tmp_path):
    sim = simulator(entries=120, seed=4)
    truth = {entry["sequence"]: entry for entry in sim.entries()}
    await run_pipeline(sim.url, tmp_path, sink_config(peer, format="cloudevents-binary"))

    received = await receive_all(peer, len(truth))
    assert sorted(m["json"]["sequence"] for m in received) == sorted(truth)
    for message in received:
        entry = truth[message["json"]["sequence"]]
        assert message["json"] == entry  # the body is the entry itself
        assert message["content_type"] == "application/json"
        assert message["session_id"] is None
        properties = message["application_properties"]
        assert properties["cloudEvents_id"] == message["message_id"] == event_id(sim.url, entry)
        assert properties["cloudEvents_specversion"] == "1.0"
        assert properties["cloudEvents_source"] == sim.url
        assert properties["cloudEvents_type"] == message["subject"]
        assert properties["cloudEvents_partitionkey"] == entry["studyInstanceUid"]
        assert properties["cloudEvents_time"] == entry["timestamp"]
        assert properties["cloudEvents_subject"].startswith(
            f"studies/{entry['studyInstanceUid']}/series/"
        )
        assert "cloudEvents_datacontenttype" not in properties  # it is the content type


async def test_raw_format_and_a_session_receiver_sees_its_study_in_feed_order(
    simulator, peer, tmp_path
):
    sim = simulator(entries=200, seed=5)
    truth = sim.entries()
    await run_pipeline(sim.url, tmp_path, sink_config(peer, format="raw", sessions=True))

    expected: dict[str, list[int]] = defaultdict(list)
    for entry in truth:
        expected[entry["studyInstanceUid"]].append(entry["sequence"])
    session, messages = await receive_session(peer)
    assert session in expected
    assert [m["json"]["sequence"] for m in messages] == expected[session]
    assert {m["session_id"] for m in messages} == {session}
    assert {m["content_type"] for m in messages} == {"application/json"}


async def test_a_topic_is_read_back_through_a_subscription(peer):
    sink = create_sink(Config.model_validate({**sink_config(peer), "queue": None, "topic": "t"}))
    try:
        assert await sink.send(events(3)) == [DELIVERED] * 3
    finally:
        await sink.close()
    client = ServiceBusClient.from_connection_string(peer.connection_string)
    async with client, client.get_subscription_receiver("t", "audit") as receiver:
        received = await receiver.receive_messages(max_message_count=10, max_wait_time=5)
        for message in received:
            await receiver.complete_message(message)
    assert [message.message_id for message in received] == [e.id for e in events(3)]
    assert peer.stats()["queues"]["t"] == 0
