import orjson
import pytest

from bridge.core.entry import DEFAULT_PARTITION, parse_entry
from bridge.feed import parse_page
from bridge.feed._client import MalformedPage
from bridge.feed._timestamps import from_ticks, to_ticks

SERVER_ENTRY = {
    "sequence": 4,
    "partitionName": "Microsoft.Default",
    "studyInstanceUid": "1.2.20",
    "seriesInstanceUid": "1.2.21",
    "sopInstanceUid": "1.2.22",
    "action": "Create",
    "timestamp": "2024-05-10T16:14:11.9+00:00",
    "state": "Current",
    "metadata": {"00080060": {"vr": "CS", "Value": ["CT"]}},
}


def test_server_shape_is_read_and_kept_as_served():
    entry = parse_entry(SERVER_ENTRY)
    assert entry.problem is None
    assert (entry.sequence, entry.action, entry.state) == (4, "Create", "Current")
    assert (entry.study, entry.series, entry.sop) == ("1.2.20", "1.2.21", "1.2.22")
    assert entry.partition == "Microsoft.Default"
    assert entry.raw is SERVER_ENTRY


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


@pytest.mark.parametrize(
    "rename, action, state",
    [
        (_pascal, "create", "current"),  # the docs' PascalCase names, swagger's lowercase enums
        (str.lower, "DELETE", "DELETED"),
        (str.upper, "Update", "Replaced"),
    ],
)
def test_names_and_enum_values_are_case_insensitive(rename, action, state):
    raw = {rename(k): v for k, v in SERVER_ENTRY.items()}
    raw[rename("action")] = action
    raw[rename("state")] = state
    entry = parse_entry(raw)
    assert entry.problem is None
    assert entry.action == action.capitalize()
    assert entry.state == state.capitalize()
    assert (entry.sequence, entry.sop) == (4, "1.2.22")


def test_absent_optional_fields_and_unknown_fields_are_tolerated():
    raw = {k: v for k, v in SERVER_ENTRY.items() if k not in ("partitionName", "metadata")}
    raw["somethingNew"] = [1, 2]
    raw["filePath"] = "DICOM/Microsoft.Default/1_2.dcm"
    entry = parse_entry(raw)
    assert entry.problem is None
    assert entry.partition == DEFAULT_PARTITION
    assert entry.raw["somethingNew"] == [1, 2]


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"sequence": "4"}, "sequence"),
        ({"sequence": 0}, "sequence"),
        ({"sequence": True}, "sequence"),
        ({"studyInstanceUid": None}, "studyInstanceUid"),
        ({"sopInstanceUid": ""}, "sopInstanceUid"),
        ({"action": 0}, "action"),
        ({"timestamp": 1715357651}, "timestamp"),
        ({"state": 2}, "state"),
    ],
)
def test_invalid_fields_make_a_poison_entry_not_an_exception(change, problem):
    entry = parse_entry({**SERVER_ENTRY, **change})
    assert entry.poison
    assert problem in entry.problem


def test_non_object_entry_is_poison():
    assert parse_entry([1, 2]).poison
    assert parse_entry(None).poison


def test_page_parsing():
    body = orjson.dumps([SERVER_ENTRY, {**SERVER_ENTRY, "sequence": 5}])
    assert [e.sequence for e in parse_page(body)] == [4, 5]
    assert parse_page(b"[]") == []
    for bad in (b'[{"sequence": 1', b"{}", b"\xff\xfe", b"", b"null"):
        with pytest.raises(MalformedPage):
            parse_page(bad)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1970-01-01T00:00:00+00:00", 0),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:01.0000001+00:00", 10_000_001),
        ("1970-01-01T00:00:01.9+00:00", 19_000_000),
        ("1970-01-01T01:00:00+01:00", 0),
    ],
)
def test_ticks_keep_seven_fractional_digits(text, expected):
    assert to_ticks(text) == expected


def test_ticks_round_trip_in_server_format():
    for text in (
        "2024-05-10T16:12:03.1234567+00:00",
        "2024-05-10T16:13:00.52+00:00",
        "2024-05-10T16:13:00+00:00",
    ):
        assert from_ticks(to_ticks(text)) == text
    assert to_ticks("2024-05-10T16:12:03.1234567Z") > to_ticks("2024-05-10T16:12:03.1234566Z")


def test_ticks_reject_missing_zone():
    with pytest.raises(ValueError):
        to_ticks("2023-05-03T10:58:00")
