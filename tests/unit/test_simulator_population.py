"""The seeded operation history behind `--entries N --seed S`."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from bridge.simulator.population import BASE_TICKS, PopulationOptions
from bridge.simulator.simulation import FeedOptions, Simulation
from bridge.simulator.store import Action
from bridge.simulator.ticks import now_ticks


def simulate(**options: object) -> Simulation:
    feed = {name: options.pop(name) for name in ("partitions", "file_path") if name in options}
    return Simulation(FeedOptions(**feed), PopulationOptions(**options))  # type: ignore[arg-type]


def dump(sim: Simulation, include_metadata: bool = True) -> bytes:
    return b"".join(sim.renderer.dump(sim.store.visible_rows(), include_metadata))


def test_the_same_seed_gives_a_byte_identical_feed_and_another_seed_does_not() -> None:
    first, second = dump(simulate(entries=3000, seed=7)), dump(simulate(entries=3000, seed=7))
    assert first == second
    assert dump(simulate(entries=3000, seed=8)) != first


@pytest.mark.parametrize("entries", [0, 1, 57, 2500])
def test_exactly_the_requested_rows_are_written_and_all_visible(entries: int) -> None:
    sim = simulate(entries=entries, seed=1)
    assert len(sim.store) == entries == len(sim.store.visible_rows()) == len(sim.store.time_order)
    assert not sim.store.pending


def test_the_history_mixes_every_action_and_state() -> None:
    sim = simulate(entries=5000, seed=3)
    pairs = Counter((entry["action"], entry["state"]) for entry in orjson.loads(dump(sim)))
    assert {action for action, _ in pairs} == {"Create", "Update", "Delete"}
    assert {state for _, state in pairs} == {"Current", "Replaced", "Deleted"}
    assert pairs["Delete", "Replaced"] > 0  # deleted, then stored again
    assert pairs["Create", "Current"] > len(sim.store) / 2


def test_studies_are_realistic() -> None:
    sim = simulate(entries=5000, seed=4)
    studies = {sim.store.registry.series_of[key].study for key in range(len(sim.store.registry))}
    assert len(studies) > 50
    for study in studies:
        assert 1 <= len(study.series) <= 4
        assert all(1 <= len(series.instances) <= 30 for series in study.series.values())


def test_without_gaps_sequences_are_contiguous() -> None:
    sim = simulate(entries=2000, seed=5, gap_rate=0.0)
    assert list(sim.store.sequence) == list(range(1, 2001))


def test_gaps_stay_within_max_gap() -> None:
    sim = simulate(entries=4000, seed=5, gap_rate=0.05, max_gap=1000)
    steps = Counter(b - a for a, b in zip(sim.store.sequence, sim.store.sequence[1:], strict=False))
    assert max(steps) <= 1001
    assert max(steps) > 100  # a gap wider than a v1 page
    assert sum(count for step, count in steps.items() if step > 1) > 50


def test_timestamps_lie_in_the_past_and_deletes_share_one() -> None:
    sim = simulate(entries=3000, seed=6, reorder_rate=0.0)
    stamps = list(sim.store.timestamp)
    assert stamps[0] > BASE_TICKS and stamps[-1] < now_ticks()
    assert stamps == sorted(stamps)  # without reordering, time order is sequence order
    deletes = Counter(
        stamp
        for stamp, action in zip(stamps, sim.store.action, strict=True)
        if action == Action.DELETE
    )
    assert any(count > 1 for count in deletes.values())


def test_reordered_stores_make_time_order_differ_from_sequence_order() -> None:
    sim = simulate(entries=3000, seed=6, reorder_rate=0.05)
    assert list(sim.store.time_order) != sorted(sim.store.time_order)
    keys = [(sim.store.timestamp[row], sim.store.sequence[row]) for row in sim.store.time_order]
    assert keys == sorted(keys)


def test_partitions_and_missing_metadata() -> None:
    sim = simulate(entries=3000, seed=2, partitions=3, missing_metadata_rate=0.1)
    entries = orjson.loads(dump(sim, include_metadata=False))
    assert {entry["partitionName"] for entry in entries} == {
        "Microsoft.Default",
        "partition-1",
        "partition-2",
    }
    share = len(sim.store.registry.metadata_missing) / len(sim.store.registry)
    assert 0.05 < share < 0.15


@pytest.mark.parametrize(
    "options",
    [{"entries": -1}, {"gap_rate": 1.5}, {"max_gap": 0}, {"missing_metadata_rate": -0.1}],
)
def test_invalid_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PopulationOptions(**options)  # type: ignore[arg-type]
