import orjson
import pytest

from bridge.core.entry import parse_entry
from bridge.core.event import STRUCTURED_CONTENT_TYPE
from bridge.delivery.format import Formatter

RAW = {
    "sequence": 7,
    "partitionName": "p1",
    "studyInstanceUid": "1.2",
    "seriesInstanceUid": "1.2.3",
    "sopInstanceUid": "1.2.3.4",
    "action": "Delete",
    "timestamp": "2024-05-10T16:12:03.1234567+00:00",
    "state": "Deleted",
    "custom": [1.5, None],
}


@pytest.fixture
def entry():
    return parse_entry(dict(RAW))


def test_structured_event_carries_the_entry_as_served(entry):
    event = Formatter("https://dicom.example:8443/", "cloudevents").event(entry)
    body = orjson.loads(event.body)
    assert body == {
        "specversion": "1.0",
        "id": "dicom.example:8443/p1/7",
        "source": "https://dicom.example:8443",
        "type": "dicom.instance.deleted",
        "subject": "studies/1.2/series/1.2.3/instances/1.2.3.4",
        "time": "2024-05-10T16:12:03.1234567+00:00",
        "datacontenttype": "application/json",
        "partitionkey": "1.2",
        "data": RAW,
    }
    assert list(body["data"]) == list(RAW)  # field order kept
    assert event.content_type == STRUCTURED_CONTENT_TYPE
    assert event.ce_headers("ce_") == [] and event.key == "1.2"


def test_ids_are_deterministic_across_formatters(entry):
    assert Formatter("https://h").event(entry).id == Formatter("https://h", "raw").event(entry).id


def test_raw_and_binary_bodies_are_the_entry(entry):
    raw = Formatter("https://h", "raw").event(entry)
    binary = Formatter("https://h", "cloudevents-binary").event(entry)
    assert orjson.loads(raw.body) == RAW == orjson.loads(binary.body)
    assert raw.content_type == binary.content_type == "application/json"
    assert raw.ce_headers("ce_") == []
    headers = dict(binary.ce_headers("ce-"))
    assert headers["ce-id"] == "h/p1/7" and headers["ce-type"] == "dicom.instance.deleted"
    assert "ce-datacontenttype" not in headers and "ce-specversion" in headers


def test_flags_become_an_extension_attribute(entry):
    entry.flags = ("metadata-unavailable",)
    event = Formatter("https://h").event(entry)
    assert orjson.loads(event.body)["dicombridgeflags"] == "metadata-unavailable"


def test_dead_letter_record_names_reason_and_sink(entry):
    formatter = Formatter("https://h")
    record = orjson.loads(formatter.dead_letter(formatter.event(entry), "too big", "k").body)
    assert record["reason"] == "too big" and record["sink"] == "k"
    assert record["event"]["data"] == RAW and record["sequence"] == 7
    poison = parse_entry({"sequence": "x"})
    record = orjson.loads(formatter.dead_letter(poison, "unreadable", "k").body)
    assert record["entry"] == {"sequence": "x"} and record["sequence"] is None
