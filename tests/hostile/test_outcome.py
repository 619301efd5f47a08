"""The checks of a hostile run find what they claim to (sink files written by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.hostile.outcome import Memory, Outcome, check_delivery
from tests.hostile.plan import Plan
from tests.hostile.proxy import Fault

MB = 1024  # kB
ENTRIES = [{"sequence": n, "action": "Create", "metadata": {"n": n}} for n in (1, 2, 3, 4)]


def event(entry: dict, **attributes: str) -> bytes:
    return orjson.dumps({"specversion": "1.0", **attributes, "data": entry}) + b"\n"


def test_missing_different_duplicated_unknown_and_dead_lettered_entries_are_told(tmp_path):
    sink, dead = tmp_path / "events.jsonl", tmp_path / "dead-letters.jsonl"
    first = ENTRIES[0]
    without_metadata = {"action": "Create", "sequence": 2}
    sink.write_bytes(
        event({"metadata": {"n": 1}, "action": "Create", "sequence": 1})  # key order is free
        + event(first)
        + event(without_metadata, dicombridgeflags="metadata-unavailable")
        + event({"sequence": 9})
        + b'{"specversion": "1.0", "da'
    )
    dead.write_bytes(orjson.dumps({"reason": "entry cannot be read", "entry": None}) + b"\n")

    delivery = check_delivery(orjson.dumps(ENTRIES), sink, dead)

    assert (delivery.entries, delivery.delivered) == (4, 1)
    assert delivery.missing == [3, 4]
    assert delivery.different == [2]
    assert (delivery.flagged, delivery.duplicates, delivery.broken_lines) == (1, 1, 1)
    assert delivery.unknown == [9]
    assert (delivery.dead_letters, delivery.null_entries) == (1, 1)
    assert delivery.dead_letter_reasons == ["entry cannot be read"]


def outcome(delivered: list[dict], tmp_path: Path, **changes: Any) -> Outcome:
    """A run that delivered `delivered`, within every bound unless `changes` say otherwise."""
    sink = tmp_path / "events.jsonl"
    sink.write_bytes(b"".join(event(entry) for entry in delivered))
    figures: dict[str, Any] = {
        "plan": Plan(faults=(Fault("html", "any", seconds=1.0),)),
        "delivery": check_delivery(orjson.dumps(ENTRIES), sink, tmp_path / "none.jsonl"),
        "seconds": 30.0,
        "finished": True,
        "exit_code": 0,
        "memory": Memory(
            bridge_kb=90 * MB, helpers_kb=[50 * MB], pair_kb=140 * MB, total_kb=130 * MB
        ),
        "served": {("html", "latest"): 1},
        "requests": {"page": 10, "latest": 1},
        "survivors": [],
        "stderr_tail": "last words",
    }
    return Outcome(**{**figures, **changes})


def test_a_run_within_every_bound_has_no_problem(tmp_path):
    run = outcome(ENTRIES, tmp_path)
    assert run.problems() == []
    assert run.failure() == ""
    assert "faults served: html@latest 1" in run.figures()


def test_every_bound_missed_is_a_problem_of_its_own(tmp_path):
    run = outcome(
        ENTRIES[:1],
        tmp_path,
        plan=Plan(faults=(Fault("junk"), Fault("slow-loris", "latest"))),
        seconds=120.0,
        finished=False,
        exit_code=-9,
        memory=Memory(
            bridge_kb=200 * MB, helpers_kb=[150 * MB], pair_kb=350 * MB, total_kb=340 * MB
        ),
        served={("junk", "page"): 1, ("slow-loris", "page"): 1},
        survivors=[4242],
    )
    assert run.problems() == [
        "the bridge did not finish within 120 s (killed)",
        "3 of 4 entries missing: 2, 3, 4",
        "peak RSS of bridge + helper 350 MB >= 300 MB",
        "faults never served: slow-loris@latest",
        "child processes outlived the bridge: pids [4242]",
    ]
    assert run.failure().endswith("bridge stderr (last lines):\nlast words")


def test_a_bridge_that_exits_early_with_an_error_is_a_problem(tmp_path):
    assert outcome(ENTRIES, tmp_path, exit_code=1).problems() == ["the bridge exited with 1"]


def test_sink_files_absent_mean_nothing_delivered(tmp_path: Path):
    delivery = check_delivery(orjson.dumps(ENTRIES), tmp_path / "a", tmp_path / "b")
    assert delivery.missing == [1, 2, 3, 4]
    assert delivery.dead_letters == 0
