"""Live operations through the control API, in-flight commits, and the process lifecycle."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.peers.simulator import ControlError, SimulatorProcess

Start = Callable[..., SimulatorProcess]
STUDY, SERIES = "1.2.840.99.1", "1.2.840.99.1.1"
WAIT = 0.5  # how long a read must stay blocked to count as blocked


def sop(n: int) -> dict[str, str]:
    return {"study": STUDY, "series": SERIES, "sop": f"1.2.840.99.1.1.{n}"}


def states(sim: SimulatorProcess) -> list[tuple[str, str]]:
    return [(e["action"], e["state"]) for e in sim.feed("/v1/changefeed", limit=100).json()]


def test_live_operations_follow_the_state_machine(simulator: Start) -> None:
    sim = simulator()
    written = sim.store(instances=[sop(1), sop(2), sop(3)])
    assert [entry["sequence"] for entry in written["entries"]] == [1, 2, 3]
    assert written["txns"] == [] and written["duplicates"] == []
    assert sim.store(instances=[sop(1)])["duplicates"] == [
        {"partitionName": "Microsoft.Default", "studyInstanceUid": STUDY,
         "seriesInstanceUid": SERIES, "sopInstanceUid": "1.2.840.99.1.1.1"}
    ]  # fmt: skip

    sim.update(STUDY, SERIES, "1.2.840.99.1.1.2", patient_name="Changed^Name")
    deleted = sim.delete(STUDY)["entries"]
    sim.restore(STUDY, SERIES, "1.2.840.99.1.1.3")

    assert len({entry["timestamp"] for entry in deleted}) == 1  # one delete, one timestamp
    assert states(sim) == [
        ("Create", "Deleted"),
        ("Create", "Deleted"),
        ("Create", "Replaced"),
        ("Update", "Deleted"),
        ("Delete", "Deleted"),
        ("Delete", "Deleted"),
        ("Delete", "Replaced"),
        ("Create", "Current"),
    ]
    latest = sim.feed("/v1/changefeed/latest").json()
    assert latest["metadata"]["00080018"]["Value"] == ["1.2.840.99.1.1.3"]


def test_live_rows_are_stamped_with_the_real_clock(simulator: Start) -> None:
    sim = simulator(entries=100, seed=2)  # populated in the past
    before = time.time()
    written = sim.store(generate={"studies": 1, "series": 2, "instances": 3})["entries"]
    after = time.time()
    assert len(written) == 6
    latest = sim.feed("/v2/changefeed/latest").json()
    assert (latest["sequence"], latest["timestamp"]) == (
        written[-1]["sequence"],
        written[-1]["timestamp"],
    )
    moment = datetime.fromisoformat(latest["timestamp"]).timestamp()
    assert before - 0.001 <= moment <= after + 0.001


def test_a_bulk_update_changes_the_current_metadata_of_every_row(simulator: Start) -> None:
    sim = simulator()
    sim.store(instances=[sop(1)])
    before = sim.feed("/v1/changefeed").json()[0]["metadata"]
    sim.update(STUDY, patient_name="Renamed^Patient", patient_id="PID-9")
    create, update = sim.feed("/v1/changefeed").json()
    assert create["state"] == "Replaced" and update["state"] == "Current"
    assert create["metadata"] == update["metadata"] != before
    assert update["metadata"]["00100010"]["Value"] == [{"Alphabetic": "Renamed^Patient"}]
    assert update["metadata"]["00100020"]["Value"] == ["PID-9"]


def read_later(pool: ThreadPoolExecutor, sim: SimulatorProcess, path: str, **params: Any) -> Future:
    return pool.submit(sim.feed, path, **params)


def test_a_held_write_blocks_v1_readers_of_its_window_and_hides_from_v2(simulator: Start) -> None:
    sim = simulator()
    sim.store(instances=[sop(1)])
    held = sim.store(instances=[sop(2)], hold=True)
    (txn,) = held["txns"]
    sim.store(instances=[sop(3)])

    assert [e["sequence"] for e in sim.feed("/v2/changefeed").json()] == [1, 3]
    assert sim.feed("/v2/changefeed/latest").json()["sequence"] == 3
    assert [e["sequence"] for e in sim.feed("/v1/changefeed", offset=2).json()] == [3]
    with ThreadPoolExecutor(2) as pool:
        window = read_later(pool, sim, "/v1/changefeed", offset=0, limit=10)
        with pytest.raises(TimeoutError):
            window.result(timeout=WAIT)
        with pytest.raises(ControlError) as conflict:
            sim.delete(STUDY, SERIES, "1.2.840.99.1.1.2")
        assert conflict.value.status == 409
        assert sim.state()["in_flight"] == [txn]

        sim.commit(txn)

        assert [e["sequence"] for e in window.result(timeout=10).json()] == [1, 2, 3]
    assert [e["sequence"] for e in sim.feed("/v2/changefeed").json()] == [1, 2, 3]


def test_v1_latest_waits_for_an_in_flight_top_row(simulator: Start) -> None:
    sim = simulator()
    sim.store(instances=[sop(1)])
    sim.store(instances=[sop(2)], hold=True)
    with ThreadPoolExecutor(1) as pool:
        latest = read_later(pool, sim, "/v1/changefeed/latest")
        with pytest.raises(TimeoutError):
            latest.result(timeout=WAIT)
        assert sim.feed("/v2/changefeed/latest").json()["sequence"] == 1
        sim.commit()
        assert latest.result(timeout=10).json()["sequence"] == 2


def test_an_in_flight_write_commits_by_itself(simulator: Start) -> None:
    sim = simulator()
    sim.store(instances=[sop(1)])
    started = time.perf_counter()
    written = sim.store(instances=[sop(2)], in_flight_ms=400)
    assert written["txns"]
    assert [e["sequence"] for e in sim.feed("/v2/changefeed").json()] == [1]
    # The v1 read covering the row returns once the row is committed.
    page = sim.feed("/v1/changefeed", offset=0, limit=10).json()
    assert [e["sequence"] for e in page] == [1, 2]
    assert time.perf_counter() - started >= 0.35
    assert sim.state()["in_flight"] == []


def test_a_rolled_back_write_leaves_a_gap_and_unblocks_readers(simulator: Start) -> None:
    sim = simulator()
    sim.store(instances=[sop(1)])
    sim.delete(STUDY, hold=True)
    with ThreadPoolExecutor(1) as pool:
        window = read_later(pool, sim, "/v1/changefeed")
        with pytest.raises(TimeoutError):
            window.result(timeout=WAIT)
        sim.rollback()
        assert [e["sequence"] for e in window.result(timeout=10).json()] == [1]
    written = sim.store(instances=[sop(2)])["entries"]
    assert written[0]["sequence"] == 3
    assert states(sim) == [("Create", "Current"), ("Create", "Current")]


def test_a_blocked_read_gets_503_when_the_server_stops(simulator: Start) -> None:
    sim = simulator()
    sim.store(instances=[sop(1)], hold=True)
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=sim.url) as other:
        window = pool.submit(other.get, "/v1/changefeed")
        with pytest.raises(TimeoutError):
            window.result(timeout=WAIT)
        assert sim.stop() == 0
        assert window.result(timeout=10).status_code == 503
    assert "Traceback" not in sim.stderr()


def test_a_failing_in_flight_store_rolls_back_what_it_began(simulator: Start) -> None:
    sim = simulator()
    with pytest.raises(ControlError) as conflict:
        sim.store(instances=[sop(1), sop(1)], hold=True)  # the second waits on the first
    assert conflict.value.status == 409
    assert sim.state()["in_flight"] == []
    assert sim.store(instances=[sop(1)])["entries"][0]["sequence"] == 2  # 1 was burnt


def test_control_errors(simulator: Start) -> None:
    sim = simulator()
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("delete", {"study": "1.2.3"}, 404),
        ("store", {"instances": [{"sop": "not-a-uid"}]}, 400),
        ("store", {"instances": [{"partition": "Nope"}]}, 404),
        ("store", {"surprise": 1}, 400),
        ("store", {}, 400),
        ("gap", {"count": 0}, 400),
        ("commit", {"txn": 99}, 404),
        ("reset", {"entries": -1}, 400),
        ("reset", {"colour": "red"}, 400),
    ]
    for path, body, status in cases:
        with pytest.raises(ControlError) as error:
            sim.control("POST", path, body)
        assert error.value.status == status, (path, body)
    assert sim.client.get("/_sim/nothing").status_code == 404


def test_reset_repopulates_and_keeps_omitted_options(simulator: Start) -> None:
    sim = simulator(entries=50, seed=1, file_path=True)
    state = sim.reset(entries=120, seed=9)
    assert (state["rows"], state["population"]["seed"], state["feed"]["file_path"]) == (
        120,
        9,
        True,
    )
    assert len(sim.entries()) == 120
    assert "filePath" in sim.entries()[0]
    with httpx.Client(base_url=sim.url) as other:
        assert other.get("/v1/changefeed/latest").json()["sequence"] == state["latest_sequence"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_process_prints_one_line_and_exits_cleanly_on_a_signal(
    simulator: Start, signum: int
) -> None:
    sim = simulator(entries=10)
    assert sim.url.startswith("http://127.0.0.1:")
    process = sim.process
    assert process is not None and process.stdout is not None
    process.send_signal(signum)
    assert process.stdout.read() == b""  # nothing after the listening line
    assert process.wait(10) == 0
    assert "Traceback" not in sim.stderr()
