"""The store's indexed reads against brute force, under random operation histories."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.simulator.catalog import Catalog
from bridge.simulator.registry import DEFAULT_PARTITION, NotFound, Registry
from bridge.simulator.store import COMMITTED, Action, Conflict, FeedStore, State, Transaction

T0 = 638_400_000_000_000_000
operation = st.tuples(
    st.sampled_from(["store", "delete", "update", "skip", "hold", "commit", "abort"]),
    st.integers(0, 5),  # which instance, or how many values to skip
    st.integers(-1, 1),  # timestamp step: ties are common, negative steps are early stamps
)


def replay(steps: list[tuple[str, int, int]]) -> FeedStore:
    store = FeedStore(Registry([DEFAULT_PARTITION]))
    catalog = Catalog(store.registry, random.Random(0))
    series = catalog.series(catalog.study(DEFAULT_PARTITION, T0))
    keys = [catalog.instance(series) for _ in range(6)]
    held: list[Transaction] = []
    clock = T0
    for name, number, step in steps:
        clock += step
        try:
            if name == "skip":
                store.skip(number)
            elif name in ("commit", "abort") and held:
                finish = store.commit if name == "commit" else store.abort
                finish(held.pop(number % len(held)))
            elif name in ("store", "hold", "delete", "update"):
                key = keys[number]
                if name == "delete":
                    txn = store.delete([key], clock)
                elif name == "update":
                    txn = store.update([key], clock, catalog.patient())
                else:
                    txn = store.store(key, clock)
                if txn is not None and name == "hold":
                    held.append(txn)
                elif txn is not None:
                    store.commit(txn)
        except (NotFound, Conflict):
            pass
    return store


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=40), st.integers(0, 30), st.integers(1, 10))
def test_windows_and_states_match_brute_force(
    steps: list[tuple[str, int, int]], offset: int, limit: int
) -> None:
    store = replay(steps)
    visible = [row for row in range(len(store)) if store.status[row] == COMMITTED]
    sequence, timestamp = store.sequence, store.timestamp

    assert store.v1_rows(offset, limit) == [
        row for row in visible if offset < sequence[row] <= offset + limit
    ]
    assert store.v1_blocked(offset, limit) == any(
        offset < sequence[row] <= offset + limit
        for txn in store.pending.values()
        for row in txn.rows
    )
    by_time = sorted(visible, key=lambda row: (timestamp[row], sequence[row]))
    assert list(store.time_order) == by_time
    start, end = T0 - 5, T0 + offset - 10
    window = [row for row in by_time if start <= timestamp[row] < end]
    assert store.v2_rows(start, end, offset % 4, limit) == window[offset % 4 :][:limit]

    for row in visible:  # the newest committed row of each instance decides the states
        key = store.key[row]
        newest = max(r for r in visible if store.key[r] == key)
        deleted = store.action[newest] == Action.DELETE
        expected = (
            State.DELETED
            if deleted
            else State.CURRENT
            if store.original[row] == store.original[newest]
            else State.REPLACED
        )
        assert store.state(row) is expected
