"""Three replicas on one live feed (`ha:`): the leader killed, replaced, paused; the store
cut. Every sequence is delivered, one leader at a time, and the stale leader's commits are
refused."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bridge.offsets import open_store
from bridge.runtime.app import run_async
from tests.e2e.helpers import run_bridge
from tests.integration.replicas.conftest import SharedStore
from tests.integration.replicas.harness import Replicas, Watch
from tests.peers.simulator import SimulatorProcess

pytestmark = pytest.mark.slow
TTL = 3.0


class Appender:
    """Appends a study of a few instances to the live feed every 100 ms, and bursts."""

    def __init__(self, sim: SimulatorProcess) -> None:
        self.sim = sim
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def burst(self, instances: int) -> None:
        with self._lock:
            self.sim.store(generate={"studies": 1, "instances": instances})

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.burst(3)

    def __enter__(self) -> Appender:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def replicas(engine: SharedStore, simulator, tmp_path: Path) -> Iterator[Replicas]:
    sim = simulator(entries=3_000, seed=15)
    made = Replicas(tmp_path, sim.url, engine.offsets, lease_ttl=f"{TTL:g}s")
    made.sim = sim  # type: ignore[attr-defined]
    try:
        yield made
    finally:
        made.stop_all()


def _latest(sim: SimulatorProcess) -> int:
    return int(sim.feed("/v1/changefeed/latest").json()["sequence"])


def _wait_delivered(replicas: Replicas, sim: SimulatorProcess, timeout: float) -> None:
    """Until every sequence of the feed (its ground truth: sequences may have gaps) was
    delivered by some replica."""
    wanted = {entry["sequence"] for entry in sim.entries()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted <= set(replicas.delivered()):
            return
        time.sleep(0.1)
    missing = sorted(wanted - set(replicas.delivered()))
    raise AssertionError(f"{len(missing)} sequences never delivered, first {missing[:10]}")


def _wait(condition, timeout: float, replica) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, replica.log()
        time.sleep(0.01)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _cursor(engine: SharedStore) -> int:
    async def read() -> int:
        store = open_store(engine.config())
        try:
            rows = await store.list()
        finally:
            await store.close()
        return max((row.sequence or 0 for row in rows), default=0)

    return run_async(read())


def test_the_leader_killed_three_times_and_paused_once(replicas: Replicas, engine) -> None:
    sim = replicas.sim  # type: ignore[attr-defined]
    for _ in range(3):
        replicas.start()
    leader = replicas.wait_for_leader(30)
    standby = next(r for r in replicas.alive if r is not leader)
    deadline = time.monotonic() + 30
    while (answer := standby.ready()) is None and time.monotonic() < deadline:
        assert standby.alive, standby.log()
        time.sleep(0.05)
    assert answer is not None, standby.log()
    status, body = answer
    assert status == 200 and body["role"] == "standby", body

    with Watch(replicas) as watch, Appender(sim) as appender:
        takeovers = []
        for _ in range(3):
            time.sleep(1.0)
            leader.process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            leader.process.wait(10)
            replicas.start()  # the replacement
            leader = replicas.wait_for_leader(2 * TTL + 5)
            takeovers.append(time.monotonic() - killed_at)

        # Paused mid catch-up (handled entries not committed yet): its commits, when it
        # resumes, are the stale ones to refuse.
        time.sleep(1.0)
        before = _size(leader.output)
        appender.burst(20_000)
        _wait(lambda: _size(leader.output) > before + 100_000, 30, leader)
        stale = leader
        stale.process.send_signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        leader = replicas.wait_for_leader(2 * TTL + 5, besides=stale)
        time.sleep(max(0.0, paused_at + 2 * TTL + 0.5 - time.monotonic()))  # > 2 x TTL
        stale.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while stale.metric("dicom_bridge_leader") != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)

    last = _latest(sim)
    _wait_delivered(replicas, sim, 60)
    print(  # the figures, with -s
        f"takeovers {[round(t, 1) for t in takeovers]} s, longest delivery gap "
        f"{watch.longest_gap:.1f} s, {watch.samples} samples, at most {watch.most_leaders} "
        f"leader(s), stale leader's refused commits "
        f"{stale.metric('dicom_bridge_lease_lost_total')}, {last:,} entries; gap "
        f"{[round(t - paused_at, 1) for t in watch.gap_between]} s after the pause"
    )
    assert watch.samples > 20
    assert watch.most_leaders == 1
    assert watch.longest_gap < 2 * TTL + 4, watch.longest_gap
    # Within the TTL and one renew interval (a third of it), plus the time to see it.
    assert max(takeovers) < TTL + TTL / 3 + 2, takeovers
    assert stale.metric("dicom_bridge_leader") == 0
    assert (stale.metric("dicom_bridge_lease_lost_total") or 0) >= 1, stale.log()
    assert "stepped down" in stale.log()
    _wait(lambda: _cursor(engine) == last, 30, leader)  # committed just after delivery


class CursorWatch:
    """Every 250 ms: the route's cursor as the store holds it (read directly, not through
    the proxy); keeps every regression seen."""

    def __init__(self, engine: SharedStore) -> None:
        self.engine = engine
        self.regressions: list[tuple[int, int]] = []
        self.highest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CursorWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = _cursor(self.engine)
            if now < self.highest:
                self.regressions.append((self.highest, now))
            self.highest = max(self.highest, now)


def test_the_store_cut_for_20_seconds(replicas: Replicas, engine: SharedStore) -> None:
    sim = replicas.sim  # type: ignore[attr-defined]
    for _ in range(2):
        replicas.start()
    leader = replicas.wait_for_leader(30)
    with CursorWatch(engine) as cursors, Watch(replicas) as watch, Appender(sim):
        _wait(lambda: cursors.highest > 0, 30, leader)
        time.sleep(1.0)
        engine.proxy.cut()
        cut_at = time.monotonic()
        # The leader cannot renew: it stops before its lease could lapse, and nobody leads.
        _wait(lambda: not replicas.leaders(), TTL + 2, leader)
        assert time.monotonic() - cut_at < TTL + 0.5  # (seen by polling every replica)
        during = _cursor(engine)  # now, not the last sample (a commit just before the cut)
        while time.monotonic() - cut_at < 20:
            assert not replicas.leaders()
            time.sleep(0.25)
        assert cursors.highest == during  # nothing committed while the store was away
        engine.proxy.restore()
        leader = replicas.wait_for_leader(2 * TTL + 10)
        _wait(lambda: cursors.highest > during, 30, leader)

    _wait_delivered(replicas, sim, 60)
    assert cursors.regressions == []
    assert watch.most_leaders == 1
    assert all(replica.alive for replica in replicas.started)
    _wait(lambda: _cursor(engine) == _latest(sim), 30, leader)


def test_a_sigtermed_leader_hands_over_at_once(engine: SharedStore, simulator, tmp_path) -> None:
    """With a long TTL: the standby leads well before the lease could have expired, and
    `offsets show` names the holder."""
    sim = simulator(entries=500, seed=3)
    replicas = Replicas(tmp_path, sim.url, engine.offsets, lease_ttl="30s")
    try:
        first = replicas.start()
        assert replicas.wait_for_leader(30) is first
        second = replicas.start()
        _wait(lambda: second.ready() is not None, 30, second)
        assert second.ready() == (200, {"ready": True, "problems": {}, "role": "standby",
                                        "replica": second.ready()[1]["replica"]})  # fmt: skip
        shown = run_bridge("offsets", "show", "--config", str(tmp_path / "replica-0.yaml"))
        assert shown.returncode == 0, shown.stderr
        assert "lease of feed 127.0.0.1:" in shown.stdout and "(epoch 1), expires" in shown.stdout
        shown = run_bridge("offsets", "show", "--json", "-c", str(tmp_path / "replica-0.yaml"))
        lease = orjson.loads(shown.stdout)["lease"]
        assert (lease["owner"], lease["epoch"], lease["state"]) == (
            first.ready()[1]["replica"],
            1,
            "expires",
        )
        stopped_at = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(30) == 0, first.log()
        assert replicas.wait_for_leader(15) is second
        assert time.monotonic() - stopped_at < 15  # half the TTL: released, not expired
        assert "released the lease" in first.log()
        _wait_delivered(replicas, sim, 60)
    finally:
        replicas.stop_all()


def test_one_bridge_without_ha_waits_out_a_store_cut(
    engine: SharedStore, simulator, tmp_path
) -> None:
    sim = simulator(entries=2_000, seed=4)
    single = Replicas(tmp_path, sim.url, engine.offsets, lease_ttl=None)
    try:
        bridge = single.start()
        with CursorWatch(engine) as cursors, Appender(sim):
            _wait(lambda: cursors.highest > 0, 30, bridge)
            engine.proxy.cut()
            cut_at = time.monotonic()
            # Once the bridge saw the connection go, none of its statements is in flight.
            _wait(lambda: "retrying in" in bridge.log(), 20, bridge)
            during = _cursor(engine)
            while time.monotonic() - cut_at < 20:
                assert bridge.alive, bridge.log()
                time.sleep(0.25)
            assert cursors.highest == during
            engine.proxy.restore()
            _wait(lambda: cursors.highest > during, 30, bridge)
        _wait_delivered(single, sim, 60)
        _wait(lambda: _cursor(engine) == _latest(sim), 30, bridge)
        assert cursors.regressions == []
        assert "retrying in" in bridge.log() and "connected again" in bridge.log()
    finally:
        single.stop_all()
