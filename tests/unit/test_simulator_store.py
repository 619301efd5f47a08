"""The simulator's change-feed table: states (docs/changefeed.md), windows (§5), in-flight."""

from __future__ import annotations

import random

import pytest

from bridge.simulator.catalog import Catalog
from bridge.simulator.registry import DEFAULT_PARTITION, NotFound, Registry, Scope
from bridge.simulator.store import Action, Conflict, FeedStore, State

T0 = 638_400_000_000_000_000  # 2024-01-01-ish, in ticks


@pytest.fixture
def store() -> FeedStore:
    return FeedStore(Registry([DEFAULT_PARTITION]))


@pytest.fixture
def catalog(store: FeedStore) -> Catalog:
    return Catalog(store.registry, random.Random(0))


def new_instance(catalog: Catalog) -> tuple[int, Scope]:
    study = catalog.study(DEFAULT_PARTITION, T0)
    series = catalog.series(study)
    key = catalog.instance(series)
    return key, Scope(study.uid, series.uid, catalog.registry.sop[key])


def run(store: FeedStore, key: int, operations: list[str]) -> None:
    for tick, operation in enumerate(operations):
        if operation == "create":
            txn = store.store(key, T0 + tick)
            assert txn is not None
        elif operation == "delete":
            txn = store.delete([key], T0 + tick)
        else:
            txn = store.update([key], T0 + tick, store.registry.patient(key))
        store.commit(txn)


@pytest.mark.parametrize(
    ("operations", "states"),
    [
        (["create"], [State.CURRENT]),
        (["create", "delete"], [State.DELETED, State.DELETED]),
        (["create", "delete", "create"], [State.REPLACED, State.REPLACED, State.CURRENT]),
        (["create", "update"], [State.REPLACED, State.CURRENT]),
        (["create", "update", "delete"], [State.DELETED] * 3),
        (["create", "update", "delete", "create"], [State.REPLACED] * 3 + [State.CURRENT]),
    ],
)
def test_states_are_derived_from_the_instances_current_watermark(
    store: FeedStore, catalog: Catalog, operations: list[str], states: list[State]
) -> None:
    key, _ = new_instance(catalog)
    run(store, key, operations)
    assert [store.state(row) for row in range(len(store))] == states
    assert [Action(action).name.lower() for action in store.action] == operations


def test_a_delete_writes_one_row_per_stored_instance_all_with_one_timestamp(
    store: FeedStore, catalog: Catalog
) -> None:
    study = catalog.study(DEFAULT_PARTITION, T0)
    first, second = catalog.series(study), catalog.series(study)
    keys = [catalog.instance(first), catalog.instance(first), catalog.instance(second)]
    for key in keys:
        store.commit(store.store(key, T0))
    store.commit(store.delete([keys[0]], T0 + 5))
    catalog.instance(catalog.series(study))  # registered, never stored: no Delete row for it

    txn = store.delete(store.registry.resolve(Scope(study.uid)), T0 + 10)
    store.commit(txn)

    assert [store.key[row] for row in txn.rows] == keys[1:]
    assert {store.timestamp[row] for row in txn.rows} == {T0 + 10}
    assert {store.action[row] for row in txn.rows} == {Action.DELETE}
    with pytest.raises(NotFound):
        store.delete(store.registry.resolve(Scope(study.uid)), T0 + 20)


def test_storing_an_existing_instance_writes_nothing(store: FeedStore, catalog: Catalog) -> None:
    key, _ = new_instance(catalog)
    store.commit(store.store(key, T0))
    assert store.store(key, T0 + 1) is None
    assert len(store) == 1


def test_unknown_uids_are_not_found(store: FeedStore, catalog: Catalog) -> None:
    _, scope = new_instance(catalog)
    for missing in (
        Scope("1.2.3"),
        Scope(scope.study, "1.2.3"),
        Scope(scope.study, scope.series, "1.2.3"),
        Scope(scope.study, partition="Other"),
    ):
        with pytest.raises(NotFound):
            store.registry.resolve(missing)


def test_a_bulk_update_versions_every_instance_and_changes_its_patient(
    store: FeedStore, catalog: Catalog
) -> None:
    study = catalog.study(DEFAULT_PARTITION, T0)
    series = catalog.series(study)
    keys = [catalog.instance(series) for _ in range(3)]
    for key in keys:
        store.commit(store.store(key, T0))
    patient = catalog.patient("Renamed^Patient", "PID-NEW")

    txn = store.update(keys, T0 + 1, patient)
    store.commit(txn)

    assert [store.action[row] for row in txn.rows] == [Action.UPDATE] * 3
    assert [store.state(row) for row in range(len(store))] == [State.REPLACED] * 3 + [
        State.CURRENT
    ] * 3
    assert all(store.registry.patient(key).name == "Renamed^Patient" for key in keys)
    assert store.registry.patient(catalog.instance(catalog.series(study))) is study.patient


def test_a_restore_drops_the_bulk_update_of_the_deleted_version(
    store: FeedStore, catalog: Catalog
) -> None:
    key, _ = new_instance(catalog)
    run(store, key, ["create"])
    store.commit(store.update([key], T0, catalog.patient("Changed^Name")))
    run(store, key, ["delete", "create"])
    assert store.registry.patient(key) is store.registry.series_of[key].study.patient


def test_v1_windows_are_sequence_ranges_and_may_be_empty_inside_a_gap(
    store: FeedStore, catalog: Catalog
) -> None:
    for gap in (0, 0, 25, 0):
        store.skip(gap)
        run(store, new_instance(catalog)[0], ["create"])
    sequences = list(store.sequence)
    assert sequences == [1, 2, 28, 29]

    def window(offset: int, limit: int) -> list[int]:
        return [store.sequence[row] for row in store.v1_rows(offset, limit)]

    assert window(0, 10) == [1, 2]
    assert window(2, 10) == []  # (2, 12] lies in the gap, later entries exist
    assert window(20, 8) == [28]  # (20, 28]: the upper bound is inclusive
    assert window(28, 100) == [29]
    assert window(29, 100) == []


def test_v2_windows_order_by_timestamp_then_sequence(store: FeedStore, catalog: Catalog) -> None:
    stamps = [T0 + 30, T0 + 10, T0 + 20, T0 + 10, T0 + 40]
    for stamp in stamps:
        store.commit(store.store(new_instance(catalog)[0], stamp))

    def window(start: int, end: int, offset: int = 0, limit: int = 100) -> list[int]:
        return [store.sequence[row] for row in store.v2_rows(start, end, offset, limit)]

    assert window(0, T0 + 100) == [2, 4, 3, 1, 5]
    assert window(T0 + 10, T0 + 30) == [2, 4, 3]  # start inclusive, end exclusive
    assert window(T0 + 11, T0 + 40) == [3, 1]
    assert window(0, T0 + 100, offset=1, limit=2) == [4, 3]
    assert window(0, T0 + 100, offset=5) == []
    assert store.sequence[store.latest_v2()] == 5
    row, blocked = store.latest_v1()
    assert (store.sequence[row], blocked) == (5, False)


def test_latest_orders_differ_between_v1_and_v2(store: FeedStore, catalog: Catalog) -> None:
    store.commit(store.store(new_instance(catalog)[0], T0 + 50))
    store.commit(store.store(new_instance(catalog)[0], T0 + 10))  # timestamp taken earlier
    assert store.sequence[store.latest_v1()[0]] == 2
    assert store.sequence[store.latest_v2()] == 1


def test_an_in_flight_transaction_is_invisible_until_committed(
    store: FeedStore, catalog: Catalog
) -> None:
    run(store, new_instance(catalog)[0], ["create"])
    key, _ = new_instance(catalog)
    txn = store.store(key, T0)  # every row at T0: v2 orders them by sequence
    assert txn is not None
    run(store, new_instance(catalog)[0], ["create"])

    assert [store.sequence[row] for row in store.v1_rows(0, 10)] == [1, 3]
    assert store.v1_blocked(0, 10) and store.v1_blocked(1, 1)
    assert not store.v1_blocked(2, 10) and not store.v1_blocked(0, 1)
    assert [store.sequence[row] for row in store.v2_rows(0, T0 + 100, 0, 10)] == [1, 3]
    assert store.latest_v1() == (2, False)  # the in-flight row is below the top
    with pytest.raises(Conflict):
        store.delete([key], T0 + 6)

    store.commit(txn)
    assert [store.sequence[row] for row in store.v1_rows(0, 10)] == [1, 2, 3]
    assert [store.sequence[row] for row in store.v2_rows(0, T0 + 100, 0, 10)] == [1, 2, 3]
    assert store.state(1) is State.CURRENT
    assert not store.pending and not store.registry.locked


def test_v1_latest_waits_for_an_in_flight_top_row(store: FeedStore, catalog: Catalog) -> None:
    run(store, new_instance(catalog)[0], ["create"])
    txn = store.store(new_instance(catalog)[0], T0)
    assert txn is not None
    assert store.latest_v1() == (None, True)
    assert store.sequence[store.latest_v2()] == 1


def test_a_rolled_back_transaction_leaves_a_gap(store: FeedStore, catalog: Catalog) -> None:
    key, _ = new_instance(catalog)
    txn = store.store(key, T0)
    assert txn is not None
    store.abort(txn)
    run(store, key, ["create"])  # the instance was never created: storing it works

    assert [store.sequence[row] for row in store.v1_rows(0, 10)] == [2]
    assert store.latest_v1() == (1, False)
    assert not store.v1_blocked(0, 10)


def test_a_watermark_change_clears_the_cached_rows_of_that_instance_only(
    store: FeedStore, catalog: Catalog
) -> None:
    changed, _ = new_instance(catalog)
    untouched, _ = new_instance(catalog)
    run(store, changed, ["create"])
    run(store, untouched, ["create"])
    run(store, changed, ["update"])
    for row in range(len(store)):
        store.cache.put(row, b"cached")

    run(store, changed, ["delete"])

    assert store.cache.slots == [None, b"cached", None, None]
