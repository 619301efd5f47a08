"""`format: eventgrid` and `eventgrid-cloudevents`: the events the Azure DICOM service
publishes to Event Grid, read by what consumers of those events use: the azure-eventgrid
SDK (`EventGridEvent`, `SystemEventNames`; its Python package has no data model for the
DICOM events, so `data` is checked against the service's documented sample), azure-core's
`CloudEvent`, and the CloudEvents SDK."""

from __future__ import annotations

import uuid

import orjson
import pytest
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, SystemEventNames
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.event import STRUCTURED_CONTENT_TYPE
from bridge.delivery.format import Formatter, name_uuid
from bridge.ops.dlq import Record
from sinks import config_models
from tests.factories import entry

#: The service's DicomImageUpdated sample (Event Grid schema), from the public docs.
SAMPLE = {
    "id": "83cb0f51-af41-e58c-3c6c-46344b349bc5",
    "topic": "/subscriptions/{subscription-id}/resourceGroups/{resource-group-name}/providers/"
    "Microsoft.HealthcareApis/workspaces/{workspace-name}",
    "subject": "{dicom-account}.dicom.azurehealthcareapis.com/v1/partitions/Microsoft.Default/"
    "studies/1.2.3.4.3/series/1.2.3.4.3.9423673/instances/"
    "1.3.6.1.4.1.45096.2.296485376.2210.1633373143.864442",
    "data": {
        "partitionName": "Microsoft.Default",
        "imageStudyInstanceUid": "1.2.3.4.3",
        "imageSeriesInstanceUid": "1.2.3.4.3.9423673",
        "imageSopInstanceUid": "1.3.6.1.4.1.45096.2.296485376.2210.1633373143.864442",
        "serviceHostName": "{dicom-account}.dicom.azurehealthcareapis.com",
        "sequenceNumber": 2,
    },
    "eventType": "Microsoft.HealthcareApis.DicomImageUpdated",
    "dataVersion": "1",
    "metadataVersion": "1",
    "eventTime": "2023-06-09T16:55:44.7197137Z",
}
URL = "https://myws-mydicom.dicom.azurehealthcareapis.com"
HOST = "myws-mydicom.dicom.azurehealthcareapis.com"
EVENT_NAMES = {
    "Create": SystemEventNames.HealthcareDicomImageCreatedEventName,
    "Update": SystemEventNames.HealthcareDicomImageUpdatedEventName,
    "Delete": SystemEventNames.HealthcareDicomImageDeletedEventName,
}


def event(fmt: str = "eventgrid", url: str = URL, name: str | None = None, **fields):
    return Formatter(url, fmt, name).event(entry(4, **fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("action", ["Create", "Update", "Delete"])
def test_the_azure_sdk_reads_the_event_grid_event(action):
    formatted = event(action=action, study="1.2.3", metadata={"00080060": {"vr": "CS"}})
    parsed = EventGridEvent.from_json(formatted.body)
    assert parsed.event_type == EVENT_NAMES[action] == formatted.type
    assert parsed.id == formatted.id
    assert parsed.subject == f"{HOST}/v1/studies/1.2.3/series/1.2.3.1/instances/1.2.3.1.4"
    assert parsed.topic == URL
    assert (parsed.data_version, parsed.metadata_version) == ("1", "1")
    assert parsed.event_time.isoformat() == "2024-05-10T16:12:03.123456+00:00"
    assert parsed.data == {
        "partitionName": "Microsoft.Default",
        "imageStudyInstanceUid": "1.2.3",
        "imageSeriesInstanceUid": "1.2.3.1",
        "imageSopInstanceUid": "1.2.3.1.4",
        "serviceHostName": HOST,
        "sequenceNumber": 4,
    }  # the service's fields only: no state, no metadata


def test_the_event_has_the_members_and_types_of_the_service_sample():
    document = orjson.loads(event(action="Update").body)
    assert list(document) == list(SAMPLE)
    assert list(document["data"]) == list(SAMPLE["data"])
    for key, value in [*SAMPLE.items(), *SAMPLE["data"].items()]:
        mine = document.get(key, document["data"].get(key))
        assert type(mine) is type(value), key
    assert document["eventTime"] == "2024-05-10T16:12:03.1234567+00:00"  # as the feed served it
    EventGridEvent.from_dict(SAMPLE)  # and the sample is what the SDK reads, too


def test_ids_are_name_based_guids_stable_across_restarts_formats_and_urls():
    formatted = event()
    assert formatted.id == str(uuid.uuid5(uuid.NAMESPACE_URL, f"{HOST}/Microsoft.Default/4"))
    assert uuid.UUID(formatted.id).version == 5
    assert event().id == formatted.id == event("eventgrid-cloudevents").id
    alias = event(url="https://dicom-pe.privatelink.example", name=HOST)
    assert alias.id == formatted.id  # the same feed.name through another URL
    assert orjson.loads(alias.body)["data"] == orjson.loads(formatted.body)["data"]
    assert orjson.loads(alias.body)["subject"] == orjson.loads(formatted.body)["subject"]
    others = {event(partitionName="p2").id, Formatter(URL, "eventgrid").event(entry(5)).id}
    assert formatted.id not in others and len(others) == 2


@given(st.text())
def test_the_fast_name_based_uuid_is_the_standard_one(name):
    assert name_uuid(name) == str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def test_another_partition_is_in_the_subject_as_the_service_writes_it():
    parsed = EventGridEvent.from_json(event(partitionName="p2", study="9").body)
    assert parsed.subject == f"{HOST}/v1/partitions/p2/studies/9/series/9.1/instances/9.1.4"
    assert parsed.data["partitionName"] == "p2"


def test_the_cloudevents_variant_is_read_by_azure_core_and_the_cloudevents_sdk():
    formatted = event("eventgrid-cloudevents", action="Delete")
    grid = orjson.loads(event(action="Delete").body)
    azure = CloudEvent.from_json(formatted.body)
    assert azure.type == "Microsoft.HealthcareApis.DicomImageDeleted" == formatted.type
    assert (azure.id, azure.source, azure.subject) == (grid["id"], URL, grid["subject"])
    assert azure.data == grid["data"]
    standard = JSONFormat().read(None, formatted.body)
    attributes = standard.get_attributes()
    assert attributes["specversion"] == "1.0" and attributes["type"] == azure.type
    assert attributes["time"].isoformat() == "2024-05-10T16:12:03.123456+00:00"
    assert standard.get_data() == grid["data"]
    assert formatted.content_type == STRUCTURED_CONTENT_TYPE


def test_transport_fields_follow_the_event():
    formatted = event(study="7.7")
    assert formatted.content_type == "application/json"
    assert formatted.key == "7.7"  # per-study order, as every format
    assert formatted.ce_headers("ce_") == [] == event("eventgrid-cloudevents").ce_headers("ce_")


def test_a_dead_letter_carries_the_entry_so_redrive_rebuilds_the_event():
    formatter = Formatter(URL, "eventgrid")
    formatted = formatter.event(entry(4))
    line = formatter.dead_letter(formatted, "refused", "grid").body
    value = orjson.loads(line)
    assert value["id"] == formatted.id and value["event"] == orjson.loads(formatted.body)
    rebuilt = Record(None, line, value).feed_entry()  # type: ignore[arg-type]
    assert rebuilt is not None and not rebuilt.poison
    assert formatter.event(rebuilt).body == formatted.body


@pytest.mark.parametrize("sink_type", ["file", "stdout", "kafka", "servicebus", "webhook"])
def test_every_sink_takes_the_formats(sink_type):
    required = {
        "file": {"path": "out.jsonl"},
        "kafka": {"bootstrap_servers": "k:9092", "topic": "t"},
        "servicebus": {"fully_qualified_namespace": "ns.servicebus.windows.net", "queue": "q"},
        "webhook": {"url": "https://h.example/hook"},
    }.get(sink_type, {})
    model = config_models()[sink_type]
    for fmt in ("eventgrid", "eventgrid-cloudevents"):
        config = model.model_validate({"name": "s", "type": sink_type, "format": fmt, **required})
        assert config.format == fmt
