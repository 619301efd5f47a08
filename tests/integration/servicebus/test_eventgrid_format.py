"""Simulator → bridge (in process) → Service Bus and a file, in Azure's Event Grid schemas:
what a consumer written for the DICOM service's Event Grid events reads, with its SDKs, is
every change of the feed, once, each study's in feed order."""

from __future__ import annotations

import uuid
from collections import defaultdict

from azure.eventgrid import EventGridEvent, SystemEventNames
from azure.servicebus import ServiceBusReceiveMode
from azure.servicebus.aio import ServiceBusClient
from cloudevents.core.formats.json import JSONFormat

from tests.integration.servicebus.conftest import QUEUE, run_pipeline, sink_config

TYPES = {
    "Create": SystemEventNames.HealthcareDicomImageCreatedEventName,
    "Update": SystemEventNames.HealthcareDicomImageUpdatedEventName,
    "Delete": SystemEventNames.HealthcareDicomImageDeletedEventName,
}


async def received_events(peer, count: int) -> list[EventGridEvent]:
    """Every message of the queue, parsed as an Event Grid consumer does (the SDK reads a
    received Service Bus message directly)."""
    found: list[EventGridEvent] = []
    async with ServiceBusClient.from_connection_string(peer.connection_string) as client:
        receiver = client.get_queue_receiver(
            QUEUE, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, prefetch_count=500
        )
        async with receiver:
            while len(found) < count:
                batch = await receiver.receive_messages(max_message_count=500, max_wait_time=5)
                assert batch, f"received {len(found)} of {count}"
                for message in batch:
                    parsed = EventGridEvent.from_json(message)
                    assert message.message_id == parsed.id and message.subject == parsed.event_type
                    found.append(parsed)
    return found


async def test_event_grid_consumers_read_every_change_in_study_order(simulator, peer, tmp_path):
    sim = simulator(entries=250, seed=21)
    truth = sim.entries()
    host = sim.url.split("://", 1)[1]
    archive = tmp_path / "events.jsonl"
    await run_pipeline(
        sim.url,
        tmp_path,
        sink_config(peer, format="eventgrid"),
        {"name": "file", "type": "file", "path": str(archive), "format": "eventgrid-cloudevents"},
    )

    grid = await received_events(peer, len(truth))
    cloud = [JSONFormat().read(None, line) for line in archive.read_bytes().splitlines()]
    by_sequence = {entry["sequence"]: entry for entry in truth}
    for events in (
        [(e.id, e.event_type, e.subject, e.data) for e in grid],
        [(c.get_id(), c.get_type(), c.get_subject(), c.get_data()) for c in cloud],
    ):
        assert sorted(data["sequenceNumber"] for *_, data in events) == sorted(by_sequence)
        per_study: dict[str, list[int]] = defaultdict(list)
        for event_id, event_type, subject, data in events:
            entry = by_sequence[data["sequenceNumber"]]
            name = f"{host}/{entry['partitionName']}/{entry['sequence']}"
            assert event_id == str(uuid.uuid5(uuid.NAMESPACE_URL, name))
            assert event_type == TYPES[entry["action"]]
            assert subject.startswith(f"{host}/v1/") and subject.endswith(
                f"/studies/{entry['studyInstanceUid']}/series/{entry['seriesInstanceUid']}"
                f"/instances/{entry['sopInstanceUid']}"
            )
            assert data["serviceHostName"] == host
            assert data["imageSopInstanceUid"] == entry["sopInstanceUid"]
            per_study[data["imageStudyInstanceUid"]].append(entry["sequence"])
        assert all(order == sorted(order) for order in per_study.values())
