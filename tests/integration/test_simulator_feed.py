"""Feed reads over real HTTP: entry shape, windows, ordering, metadata, determinism."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tests.peers.simulator import SimulatorProcess

Start = Callable[..., SimulatorProcess]
STUDY, SERIES = "1.2.826.0.1.3680043.8.498.10", "1.2.826.0.1.3680043.8.498.11"
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


def instance(sop: str, **fields: Any) -> dict[str, Any]:
    return {"study": STUDY, "series": SERIES, "sop": sop, **fields}


def test_latest_of_an_empty_feed_is_204_with_an_empty_body(simulator: Start) -> None:
    sim = simulator()
    for version in ("v1.0-prerelease", "v1", "v2"):
        response = sim.feed(f"/{version}/changefeed/latest")
        assert response.status_code == 204
        assert response.content == b""
        assert "content-type" not in response.headers
        assert sim.feed(f"/{version}/changefeed").json() == []


def test_the_entry_shape_of_the_spec_example(simulator: Start) -> None:
    """The documented example: store A, delete A, (a gap), store B."""
    sim = simulator(file_path=False)
    sim.store(instances=[instance("1.2.826.0.1.3680043.8.498.12")])
    sim.delete(STUDY, SERIES, "1.2.826.0.1.3680043.8.498.12")
    sim.gap(1)
    sim.store(
        instances=[
            {
                "study": "1.2.826.0.1.3680043.8.498.20",
                "series": "1.2.826.0.1.3680043.8.498.21",
                "sop": "1.2.826.0.1.3680043.8.498.22",
                "modality": "CT",
                "patient_name": "Doe^Jane",
                "patient_id": "PID-001",
            }
        ]
    )

    entries = sim.feed("/v1/changefeed", offset=0, limit=10).json()

    assert [list(entry) for entry in entries] == [FIELDS, FIELDS, [*FIELDS, "metadata"]]
    assert [(e["sequence"], e["action"], e["state"]) for e in entries] == [
        (1, "Create", "Deleted"),
        (2, "Delete", "Deleted"),
        (4, "Create", "Current"),
    ]
    assert entries[0]["partitionName"] == "Microsoft.Default"
    assert entries[0]["studyInstanceUid"] == STUDY
    assert entries[0]["timestamp"].endswith("+00:00")
    metadata = entries[2]["metadata"]
    assert metadata["00080016"] == {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}
    assert metadata["00080018"] == {"vr": "UI", "Value": ["1.2.826.0.1.3680043.8.498.22"]}
    assert metadata["00080060"] == {"vr": "CS", "Value": ["CT"]}
    assert metadata["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
    assert metadata["00100020"] == {"vr": "LO", "Value": ["PID-001"]}
    assert metadata["0020000D"] == {"vr": "UI", "Value": ["1.2.826.0.1.3680043.8.498.20"]}
    assert metadata["0020000E"] == {"vr": "UI", "Value": ["1.2.826.0.1.3680043.8.498.21"]}
    assert metadata["00200013"] == {"vr": "IS", "Value": [1]}

    latest = sim.feed("/v2/changefeed/latest", includeMetadata=False)
    assert latest.headers["content-type"] == "application/json; charset=utf-8"
    assert latest.json() == {k: v for k, v in entries[2].items() if k != "metadata"}


def test_file_path_comes_with_the_external_store(simulator: Start) -> None:
    sim = simulator(entries=20, seed=1, file_path=True)
    entry = sim.feed("/v2/changefeed/latest", includeMetadata=False).json()
    assert list(entry) == [*FIELDS[:2], "filePath", *FIELDS[2:]]
    assert entry["filePath"].startswith("DICOM/Microsoft.Default/")


def test_v1_windows_are_sequence_ranges_even_across_a_gap(simulator: Start) -> None:
    sim = simulator()
    sim.store(generate={"instances": 2})
    sim.gap(250)
    sim.store(generate={"instances": 1})

    def sequences(offset: int, limit: int) -> list[int]:
        page = sim.feed("/v1/changefeed", offset=offset, limit=limit, includeMetadata=False)
        return [entry["sequence"] for entry in page.json()]

    assert sequences(0, 100) == [1, 2]
    assert sequences(2, 100) == []  # an empty page although later entries exist
    assert sim.feed("/v1/changefeed/latest").json()["sequence"] == 253
    assert sequences(152, 100) == []  # (152, 252]
    assert sequences(153, 100) == [253]  # (153, 253]: the upper bound is inclusive
    assert sequences(1, 1) == [2]


def test_v2_orders_by_timestamp_then_sequence_with_inclusive_start_and_exclusive_end(
    simulator: Start,
) -> None:
    sim = simulator()
    first = sim.store(generate={"instances": 1})["entries"][0]
    # This store's timestamp was taken a minute before its commit: earlier than `first`.
    early = sim.store(generate={"instances": 1}, backdate_ms=60_000)["entries"][0]
    last = sim.store(generate={"instances": 2})["entries"]

    def v2(**params: Any) -> list[int]:
        response = sim.feed("/v2/changefeed", includeMetadata=False, **params)
        assert response.status_code == 200, response.text
        return [entry["sequence"] for entry in response.json()]

    assert v2() == [2, 1, 3, 4]
    assert [e["sequence"] for e in sim.feed("/v1/changefeed").json()] == [1, 2, 3, 4]
    assert sim.feed("/v2/changefeed/latest").json()["sequence"] == 4
    assert v2(startTime=first["timestamp"]) == [1, 3, 4]  # inclusive start
    assert v2(startTime=early["timestamp"], endTime=first["timestamp"]) == [2]  # exclusive end
    assert v2(endTime=last[0]["timestamp"]) == [2, 1]
    assert v2(offset=1, limit=2) == [1, 3]
    assert v2(offset=4) == []


def test_paging_through_v1_and_v2_yields_the_ground_truth(simulator: Start) -> None:
    sim = simulator(entries=1500, seed=21, gap_rate=0.02, max_gap=300, reorder_rate=0.05)
    truth = sim.entries(include_metadata=False)
    assert len(truth) == 1500

    v1: list[dict[str, Any]] = []
    latest = sim.feed("/v1/changefeed/latest", includeMetadata=False).json()["sequence"]
    offset = 0
    while offset < latest:  # the DICOMcast loop: skip ahead by `limit` over an empty page
        page = sim.feed("/v1/changefeed", offset=offset, limit=100, includeMetadata=False).json()
        v1 += page
        offset = page[-1]["sequence"] if page else offset + 100
    assert v1 == truth

    v2: list[dict[str, Any]] = []
    while page := sim.feed(
        "/v2/changefeed", offset=len(v2), limit=200, includeMetadata=False
    ).json():
        v2 += page
    assert v2 == sim.entries(include_metadata=False, order="time")
    assert v2 != truth and sorted(v2, key=lambda entry: entry["sequence"]) == truth


def test_a_missing_metadata_blob_fails_the_page_with_500(simulator: Start) -> None:
    sim = simulator()
    sim.store(instances=[instance("1.2.3.1"), instance("1.2.3.2")])
    sim.set_metadata_missing(STUDY, SERIES, "1.2.3.1")

    failed = sim.feed("/v1/changefeed")
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "text/plain; charset=utf-8"
    assert "internal error" in failed.text
    assert len(sim.feed("/v1/changefeed", includeMetadata=False).json()) == 2
    assert sim.feed("/v1/changefeed", offset=1).status_code == 200  # not in this page
    assert sim.feed("/v2/changefeed", limit=1).status_code == 500

    sim.delete(STUDY, SERIES, "1.2.3.1")  # a deleted instance needs no metadata
    assert sim.feed("/v1/changefeed").status_code == 200
    sim.set_metadata_missing(STUDY, missing=False)
    sim.restore(STUDY)
    assert sim.feed("/v1/changefeed/latest").json()["metadata"]["00080018"]["Value"] == ["1.2.3.1"]


def test_the_same_seed_serves_the_same_bytes(simulator: Start) -> None:
    options = {"entries": 2000, "seed": 5, "metadata_size": 2048, "partitions": 2}
    first, second, other = (
        simulator(**options),
        simulator(**options),
        simulator(**{**options, "seed": 6}),
    )
    assert first.entries_bytes(include_metadata=True) == second.entries_bytes(include_metadata=True)
    assert first.entries_bytes() != other.entries_bytes()
    for path, params in [
        ("/v1/changefeed", {"offset": 500, "limit": 100}),
        ("/v2/changefeed", {"offset": 1000, "limit": 200}),
        ("/v2/changefeed/latest", {}),
    ]:
        assert first.feed(path, **params).content == second.feed(path, **params).content


def test_ground_truth_with_metadata_matches_the_feed(simulator: Start) -> None:
    sim = simulator(entries=400, seed=8, metadata_size=1024)
    feed = orjson.loads(sim.feed("/v2/changefeed", limit=200).content)
    feed += orjson.loads(sim.feed("/v2/changefeed", limit=200, offset=200).content)
    assert feed == sim.entries(include_metadata=True, order="time")
    assert any("metadata" in entry for entry in feed)
    assert all(("metadata" in entry) == (entry["state"] != "Deleted") for entry in feed)
