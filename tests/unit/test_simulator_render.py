"""Entry serialization (docs/changefeed.md, Entries) and the metadata rules (§4)."""

from __future__ import annotations

import random
import re

import orjson
import pytest

from bridge.simulator.catalog import Catalog
from bridge.simulator.metadata import MetadataTemplate
from bridge.simulator.registry import DEFAULT_PARTITION, Registry
from bridge.simulator.render import MetadataMissing, Renderer
from bridge.simulator.store import FeedStore
from bridge.simulator.ticks import TICKS_PER_SECOND, format_timestamp, from_parts

T0 = from_parts(2024, 5, 10, 16, 12, 3)
FIELDS = [
    "sequence",
    "partitionName",
    "studyInstanceUid",
    "seriesInstanceUid",
    "sopInstanceUid",
    "action",
    "timestamp",
    "state",
]


def build(file_path: bool = False, metadata_size: int = 0) -> tuple[FeedStore, Catalog, Renderer]:
    store = FeedStore(Registry([DEFAULT_PARTITION, "partition-1"]))
    catalog = Catalog(store.registry, random.Random(0))
    return store, catalog, Renderer(store, MetadataTemplate(metadata_size), file_path)


def stored(store: FeedStore, catalog: Catalog, partition: str = DEFAULT_PARTITION) -> int:
    key = catalog.instance(catalog.series(catalog.study(partition, T0)))
    store.commit(store.store(key, T0 + 1_234_567))
    return key


def entries(renderer: Renderer, store: FeedStore, include_metadata: bool) -> list[dict]:
    return orjson.loads(renderer.page(store.v1_rows(0, 100), include_metadata))


def test_an_entry_has_camel_case_names_in_declaration_order_and_pascal_case_enums() -> None:
    store, catalog, renderer = build()
    key = stored(store, catalog, "partition-1")
    series = store.registry.series_of[key]

    entry = orjson.loads(renderer.entry(0, include_metadata=False))

    assert list(entry) == FIELDS
    assert entry == {
        "sequence": 1,
        "partitionName": "partition-1",
        "studyInstanceUid": series.study.uid,
        "seriesInstanceUid": series.uid,
        "sopInstanceUid": store.registry.sop[key],
        "action": "Create",
        "timestamp": "2024-05-10T16:12:03.1234567+00:00",
        "state": "Current",
    }


def test_enum_values_follow_the_state_machine() -> None:
    store, catalog, renderer = build()
    first, second = stored(store, catalog), stored(store, catalog)
    store.commit(store.update([first], T0 + 5, catalog.patient()))
    store.commit(store.delete([second], T0 + 6))

    pairs = [(e["action"], e["state"]) for e in entries(renderer, store, False)]

    assert pairs == [
        ("Create", "Replaced"),
        ("Create", "Deleted"),
        ("Update", "Current"),
        ("Delete", "Deleted"),
    ]


def test_file_path_follows_partition_name_and_the_current_version() -> None:
    store, catalog, renderer = build(file_path=True)
    key = stored(store, catalog)
    before = entries(renderer, store, False)[0]
    store.commit(store.update([key], T0 + 5, catalog.patient()))
    after = entries(renderer, store, False)

    assert list(before) == [*FIELDS[:2], "filePath", *FIELDS[2:]]
    assert re.fullmatch(r"DICOM/Microsoft\.Default/\d*_\d*\.dcm", before["filePath"])
    assert after[0]["filePath"] == after[1]["filePath"] != before["filePath"]


@pytest.mark.parametrize(
    ("ticks", "text"),
    [
        (T0 + 1_234_567, "2024-05-10T16:12:03.1234567+00:00"),
        (T0 + 5_200_000, "2024-05-10T16:12:03.52+00:00"),
        (T0 + 9_000_000, "2024-05-10T16:12:03.9+00:00"),
        (T0 + 10, "2024-05-10T16:12:03.000001+00:00"),
        (T0 + 1, "2024-05-10T16:12:03.0000001+00:00"),
        (T0, "2024-05-10T16:12:03+00:00"),
        (T0 + 57 * TICKS_PER_SECOND, "2024-05-10T16:13:00+00:00"),
        (from_parts(1, 1, 1), "0001-01-01T00:00:00+00:00"),
    ],
)
def test_timestamps_are_utc_with_trimmed_fractions(ticks: int, text: str) -> None:
    assert format_timestamp(ticks) == text


def test_metadata_comes_with_current_and_replaced_entries_only_and_is_the_current_version() -> None:
    store, catalog, renderer = build()
    updated, deleted, restored = (stored(store, catalog) for _ in range(3))
    store.commit(store.update([updated], T0 + 5, catalog.patient("New^Name", "NEW-1")))
    store.commit(store.delete([deleted], T0 + 6))
    store.commit(store.delete([restored], T0 + 7))
    store.commit(store.store(restored, T0 + 8))

    page = entries(renderer, store, include_metadata=True)

    by_state = [(e["action"], e["state"], "metadata" in e) for e in page]
    assert by_state == [
        ("Create", "Replaced", True),
        ("Create", "Deleted", False),
        ("Create", "Replaced", True),
        ("Update", "Current", True),
        ("Delete", "Deleted", False),
        ("Delete", "Replaced", True),  # a replaced Delete row carries the current metadata
        ("Create", "Current", True),
    ]
    assert page[0]["metadata"] == page[3]["metadata"]
    assert page[0]["metadata"]["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "New^Name"}]}
    assert page[0]["metadata"]["00100020"] == {"vr": "LO", "Value": ["NEW-1"]}
    assert list(page[-1]) == [*FIELDS, "metadata"]
    assert all("metadata" not in e for e in entries(renderer, store, include_metadata=False))


def test_a_missing_metadata_blob_fails_pages_that_need_it_but_not_dumps() -> None:
    store, catalog, renderer = build()
    key = stored(store, catalog)
    stored(store, catalog)
    store.registry.metadata_missing.add(key)

    with pytest.raises(MetadataMissing):
        renderer.page(store.v1_rows(0, 10), include_metadata=True)
    assert len(entries(renderer, store, include_metadata=False)) == 2
    dumped = orjson.loads(b"".join(renderer.dump(store.visible_rows(), include_metadata=True)))
    assert ["metadata" in entry for entry in dumped] == [False, True]

    store.commit(store.delete([key], T0 + 9))  # deleted: its metadata is not needed any more
    assert len(entries(renderer, store, include_metadata=True)) == 3


def test_metadata_is_dicom_json_with_the_required_tags() -> None:
    store, catalog, renderer = build()
    key = stored(store, catalog)
    series = store.registry.series_of[key]

    metadata = orjson.loads(renderer.metadata(key))

    assert list(metadata) == sorted(metadata)
    assert all(re.fullmatch(r"[0-9A-F]{8}", tag) for tag in metadata)
    assert all(set(element) == {"vr", "Value"} for element in metadata.values())
    assert metadata["00080018"]["Value"] == [store.registry.sop[key]]
    assert metadata["0020000D"]["Value"] == [series.study.uid]
    assert metadata["0020000E"]["Value"] == [series.uid]
    assert metadata["00080060"]["Value"] == [series.modality]
    assert metadata["00080016"]["vr"] == "UI"
    assert metadata["00200013"] == {"vr": "IS", "Value": [1]}
    assert metadata["00100010"]["Value"] == [{"Alphabetic": series.study.patient.name}]


@pytest.mark.parametrize("size", [4096, 20_000])
def test_metadata_is_padded_to_about_the_requested_size(size: int) -> None:
    store, catalog, renderer = build(metadata_size=size)
    metadata = renderer.metadata(stored(store, catalog))
    assert abs(len(metadata) - size) < size * 0.05
    assert "00091000" in orjson.loads(metadata)


def test_without_a_size_metadata_has_no_padding() -> None:
    store, catalog, renderer = build()
    metadata = renderer.metadata(stored(store, catalog))
    assert "00091000" not in orjson.loads(metadata)
    assert len(metadata) < 1000


def test_empty_pages_are_empty_arrays() -> None:
    renderer = build()[2]
    assert renderer.page([], include_metadata=True) == b"[]"
    assert list(renderer.dump([], include_metadata=True)) == [b"[]"]


def test_dumps_come_in_chunks_that_join_into_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    store, catalog, renderer = build()
    for _ in range(7):
        stored(store, catalog)
    monkeypatch.setattr("bridge.simulator.render.DUMP_CHUNK", 3)
    chunks = list(renderer.dump(store.visible_rows(), include_metadata=True))
    assert len(chunks) == 4  # 3 + 3 + 1 entries, then the closing bracket
    assert b"".join(chunks) == renderer.page(store.visible_rows(), include_metadata=True)
