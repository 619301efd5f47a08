"""Scenarios where one component goes away mid-run: each sink's peer in turn (with the pace
of the others measured meanwhile), and the offset store's file system."""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

from tests.chaos.faults import OUTAGES, outage
from tests.chaos.harness import Harness
from tests.chaos.invariants import Result
from tests.chaos.metrics import Sample, readiness
from tests.chaos.peers import ChaosPeers
from tests.chaos.routes import SINKS, Tuning
from tests.chaos.scenarios import EXIT_MARGIN, FEED_FAULTS, stage, terminate_in_time
from tests.chaos.storage import Tmpfs, Unsupported
from tests.e2e.helpers import wait_for

#: Healthy sinks must keep at least this share of their undisturbed rate during an outage.
#: A route held back by another's outage falls to nearly 0 (what this guards against); the
#: margin is for the CPU that other tests take from the healthy ones under `make test`
#: (kafka at 0.70 of its rate was seen there, with nothing held back).
PACE = 0.5
#: An outage must bring its own sink below this share of its rate (else it tested nothing).
HELD = 0.5
#: Share of webhook requests answered only after the sink's timeout (in `combined`).
LATE = 0.01
#: The feed is slowed to a rate every sink sustains on a busy 2-core machine, so that the
#: healthy sinks' rate is the feed's, not the noise of the CPU they share.
THROTTLE = {"latency_ms": 250, "latency_jitter_ms": 20, "gap_rate": 0}
THROTTLED = Tuning(prefetch=2, rotate_bytes="512KB")


def sink_outage(
    peers: ChaosPeers,
    workdir: Path,
    *,
    kind: str,
    entries: int,
    before: float,
    seconds: float,
    seed: int = 4,
) -> Result:
    """Take one sink's peer away for `seconds` mid-run (`faults.OUTAGES`). The other sinks
    must keep their pace meanwhile, and the bridge must deliver to the returning sink
    without a restart."""
    name = f"outage-{kind}"
    sink = OUTAGES[kind]
    with contextlib.ExitStack() as stack:
        files = None
        if sink == "file":
            try:
                files = stack.enter_context(Tmpfs(workdir / name / "files", "512m"))
            except Unsupported as exc:
                return Result(name, skipped=str(exc))
        harness, result = stack.enter_context(
            stage(
                peers,
                workdir,
                name,
                entries=entries,
                seed=seed,
                tuning=THROTTLED,
                files=files.path if files else None,
                **THROTTLE,
            )
        )
        harness.start()
        harness.wait_forwarding()
        first = Sample(harness.metrics_port)
        time.sleep(before)
        second = Sample(harness.metrics_port)
        try:
            with outage(harness, kind, seconds, files):
                time.sleep(seconds)
                third = Sample(harness.metrics_port)
                status, problems = readiness(harness.metrics_port)
                if status != 503 or f"sink {sink}" not in problems:
                    result.problems.append(f"/readyz during the outage: {status} {problems}")
        except Unsupported as exc:
            result.skipped = str(exc)
            return result
        undisturbed, during = second.rates_since(first), third.rates_since(second)
        healthy = [s for s in SINKS if s != sink]
        result.pace = min(
            during[s] / undisturbed[s] if undisturbed[s] > 0 else 0.0 for s in healthy
        )
        result.notes.append(f"rates before: {_rates(undisturbed)}; during: {_rates(during)}")
        if result.pace < PACE:
            result.problems.append(
                f"healthy sinks slowed down while {sink} was down: "
                f"{_rates(undisturbed)} before, {_rates(during)} during"
            )
        if during[sink] > HELD * undisturbed[sink]:
            result.problems.append(f"the outage did not hold {sink} back: {_rates(during)}")
        _catch_up(harness, result)
    return result


def _catch_up(harness: Harness, result: Result) -> None:
    """Lift the throttle; every route, the returning one included, must catch up without
    a restart. Then stop cleanly."""
    assert harness.sim is not None
    harness.sim.set_faults(latency_ms=0, latency_jitter_ms=0)
    latest = harness.sim.state()["latest_sequence"]
    try:
        wait_for(
            lambda: all(harness.cursors().get(s, 0) >= latest for s in SINKS),
            120,
            interval=0.2,
            message="every route caught up",
        )
    except AssertionError:
        result.problems.append(f"not caught up without a restart: cursors {harness.cursors()}")
    status, problems = readiness(harness.metrics_port)
    if status != 200:
        result.problems.append(f"/readyz once caught up: {status} {problems}")
    terminate_in_time(harness, result, "after the outage")


def _rates(rates: dict[str, float]) -> str:
    return ", ".join(f"{sink} {rate:.0f}/s" for sink, rate in sorted(rates.items()))


def offset_store_full(peers: ChaosPeers, workdir: Path, *, entries: int, seed: int = 5) -> Result:
    """The offset store's file system fills up mid-run. The bridge must exit 1 with one
    line naming the store, without moving any cursor back or ahead of its sink; started
    again while the store is still full, it must fail the same way; once there is room, a
    restart catches up with nothing missing."""
    name = "offset-store-full"
    with contextlib.ExitStack() as stack:
        try:
            state = stack.enter_context(Tmpfs(workdir / name / "state", "16m"))
        except Unsupported as exc:
            return Result(name, skipped=str(exc))
        harness, result = stack.enter_context(
            stage(
                peers,
                workdir,
                name,
                entries=entries,
                seed=seed,
                tuning=THROTTLED,
                state=state.path,
                **THROTTLE,
            )
        )
        store = state.path / "offsets.db"
        harness.start()
        harness.wait_forwarding()
        wait_for(lambda: all(harness.cursors().get(s, 0) > 0 for s in SINKS), 60, message="commits")
        committed = harness.cursors()
        state.fill()
        for attempt in ("mid-run", "restart while full"):
            ended = harness.wait_exit(timeout=60)
            errors = [
                line
                for line in harness.stderr(ended).splitlines()
                if line.startswith("dicom-bridge:")
            ]
            if ended.code != 1 or len(errors) != 1 or str(store) not in errors[0]:
                result.problems.append(
                    f"{attempt}: exit {ended.code}, error lines {errors} (want exit 1 and "
                    f"one line naming {store})"
                )
            moved_back = {s: c for s, c in ended.cursors.items() if c < committed.get(s, 0)}
            if moved_back:
                result.problems.append(f"{attempt}: cursors moved back: {moved_back}")
            if attempt == "mid-run":
                harness.start()
        state.unfill()
    return result


def combined(
    peers: ChaosPeers,
    workdir: Path,
    *,
    entries: int,
    cycles: int,
    seed: int = 6,
    drain_timeout: float = 3.0,
) -> Result:
    """Everything at once: random feed faults all along and, in each cycle, one sink's peer
    going away (in turn) while the bridge (started before the outage or during it) is
    SIGKILLed at a random moment of the outage, or, every third cycle, SIGTERMed. A SIGTERM
    must still exit 0 in time though its drain cannot finish, however long the outage
    lasts (it outlasts the deadline here)."""
    rng = random.Random(seed)
    name = "combined"
    tuning = Tuning(drain_timeout=drain_timeout, rotate_bytes="512KB")
    with contextlib.ExitStack() as stack:
        try:
            files = stack.enter_context(Tmpfs(workdir / name / "files", "512m"))
        except Unsupported as exc:
            return Result(name, skipped=str(exc))
        harness, result = stack.enter_context(
            stage(
                peers,
                workdir,
                name,
                entries=entries,
                seed=seed,
                tuning=tuning,
                files=files.path,
                fault_seed=seed,
                **FEED_FAULTS,
            )
        )
        # Now and then the receiver takes a request but answers after the sink gave up:
        # re-sent within one incarnation, counted apart from crash re-deliveries.
        assert harness.receiver is not None
        harness.receiver.set_faults(rate_late=LATE)
        kinds = list(OUTAGES)
        for cycle in range(cycles):
            kind = kinds[cycle % len(kinds)]
            early = rng.random() < 0.5  # started before the outage, else while it holds
            if early:
                harness.start()
                time.sleep(rng.uniform(0.5, 2.5))
            terminating = cycle % 3 == 2
            seconds = drain_timeout + EXIT_MARGIN + 3 if terminating else rng.uniform(1, 4)
            with outage(harness, kind, seconds, files):
                if not early:
                    harness.start()
                if not terminating:
                    time.sleep(seconds * rng.random())
                    harness.kill()
                    continue
                time.sleep(rng.uniform(0.5, 2.0))
                terminate_in_time(harness, result, f"during the {kind} outage")
    return result
