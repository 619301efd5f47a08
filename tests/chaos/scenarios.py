"""The chaos scenarios, each a function of the shared peers, a work directory and its sizes,
returning a `Result` whose invariants were checked. pytest runs them small
(`test_chaos.py`), `python -m tests.chaos` large (`plan.py`).

Every scenario ends the same way (`stage`): the faults are lifted, one last incarnation
runs with `--exit-when-caught-up`, and every invariant is checked over what each sink
holds (`invariants.py`).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.chaos.harness import Harness, Incarnation
from tests.chaos.invariants import Result, verify
from tests.chaos.live import LiveWriter
from tests.chaos.peers import ChaosPeers
from tests.chaos.routes import FEED_TIMEOUT, SINKS, Tuning

#: Random feed faults (simulator fault knobs): throttling, errors, cut and dropped bodies.
FEED_FAULTS = {
    "rate_429": 0.03,
    "retry_after": 1,
    "rate_500": 0.03,
    "rate_503": 0.03,
    "truncate_rate": 0.02,
    "disconnect_rate": 0.02,
}
#: One of each feed fault, queued ahead of the random ones so that every kind happens.
SCRIPT = ("truncate", "429", "disconnect", "500", "503")
#: Longest time a SIGTERMed bridge may take beyond its drain_timeout: closing the sinks
#: (the Kafka producer's close_timeout, 5 s, for records the drain gave up on) and exiting.
EXIT_MARGIN = 7.0


@contextlib.contextmanager
def stage(
    peers: ChaosPeers, workdir: Path, name: str, **options: Any
) -> Iterator[tuple[Harness, Result]]:
    """A harness for scenario `name`; once the block is done, catch up and verify."""
    result = Result(name)
    started = time.monotonic()
    with Harness(peers, workdir / name, name, **options) as harness:
        yield harness, result
        if harness.running:
            harness.kill()
        assert harness.sim is not None
        harness.sim.set_faults(**dict.fromkeys(FEED_FAULTS, 0), latency_ms=0)
        final = harness.finish()
        if final.code != 0:
            result.problems.append(
                f"the final catch-up run exited {final.code}: {harness.stderr(final)[-500:]}"
            )
        verify(harness, result)
    result.seconds = time.monotonic() - started


def terminate_in_time(harness: Harness, result: Result, when: str) -> Incarnation:
    """SIGTERM the bridge: it must exit 0 within its drain_timeout and `EXIT_MARGIN`."""
    drain = harness.tuning.drain_timeout
    ended, took = harness.terminate(timeout=drain + 60)
    if ended.code != 0 or took > drain + EXIT_MARGIN:
        result.problems.append(
            f"SIGTERM of incarnation {ended.number} {when}: exit {ended.code} after "
            f"{took:.1f}s (drain_timeout {drain:g}s)"
        )
    return ended


def behind(harness: Harness, ended: Incarnation) -> bool:
    """Whether some route of the incarnation that just ended had not caught up."""
    assert harness.sim is not None
    latest = harness.sim.state()["latest_sequence"] or 0
    return min(ended.cursors.get(sink, 0) for sink in SINKS) < latest


def kill_storm(
    peers: ChaosPeers,
    workdir: Path,
    *,
    entries: int,
    kills: int,
    seed: int = 1,
    window: tuple[float, float] = (0.2, 4.0),
    required: int = 0,
    tuning: Tuning | None = None,
    latency_ms: int = 0,
) -> Result:
    """SIGKILL the bridge `kills` times, each at a random moment of its life (from start-up
    to full speed), restarting it after each, while changes keep arriving. `required`:
    how many kills must hit a bridge still behind the feed; `latency_ms` slows the feed
    so that the kills spread over the whole backlog, however fast this machine is."""
    rng = random.Random(seed)
    with stage(
        peers,
        workdir,
        "kill-storm",
        entries=entries,
        seed=seed,
        tuning=tuning,
        latency_ms=latency_ms,
    ) as (harness, result):
        assert harness.sim is not None
        mid_run = 0
        with LiveWriter(harness.sim, seed):
            for _ in range(kills):
                harness.start()
                time.sleep(rng.uniform(*window))  # the moment of the crash is what is random
                mid_run += behind(harness, harness.kill())
        result.notes.append(f"{mid_run} of {kills} SIGKILLs hit the bridge mid-run")
        if mid_run < required:
            result.problems.append(f"only {mid_run} of {kills} SIGKILLs hit the bridge mid-run")
    return result


def feed_faults(
    peers: ChaosPeers,
    workdir: Path,
    *,
    entries: int,
    spikes: int,
    spike_seconds: float = 3.0,
    seed: int = 2,
) -> Result:
    """Random 429s (with Retry-After), 500s, 503s, truncated and dropped bodies all along,
    and latency spikes, some longer than the feed timeout. Nothing may be missing and,
    with no crash, nothing may arrive twice."""
    rng = random.Random(seed)
    with stage(
        peers, workdir, "feed-faults", entries=entries, seed=seed, fault_seed=seed, **FEED_FAULTS
    ) as (harness, result):
        assert harness.sim is not None
        harness.start()
        harness.wait_forwarding()
        for spike in range(spikes):
            # every other spike outlasts the feed timeout: requests time out and are retried
            delay = int(FEED_TIMEOUT * 1000) + 1000 if spike % 2 else rng.randint(500, 2000)
            harness.sim.set_faults(
                latency_ms=delay, latency_jitter_ms=delay // 4, script=list(SCRIPT)
            )
            time.sleep(spike_seconds)
            harness.sim.set_faults(latency_ms=0, latency_jitter_ms=0)
            time.sleep(rng.uniform(0.5, 1.5))
        terminate_in_time(harness, result, "under feed faults")
        injected = harness.sim.stats()["faults"]
        if not all(injected.get(kind) for kind in SCRIPT):
            result.problems.append(f"not every feed fault was injected: {injected}")
    return result


def sigterm_under_load(
    peers: ChaosPeers,
    workdir: Path,
    *,
    entries: int,
    stops: int,
    seed: int = 3,
) -> Result:
    """SIGTERM while every route runs at full speed: each stop exits 0 within
    drain_timeout (plus a margin), having committed exactly what was delivered (checked
    by `invariants`: nothing delivered beyond the cursors of a clean stop)."""
    rng = random.Random(seed)
    with stage(peers, workdir, "sigterm", entries=entries, seed=seed) as (harness, result):
        for _ in range(stops):
            harness.start()
            harness.wait_forwarding()
            time.sleep(rng.uniform(0.2, 2.0))
            ended = terminate_in_time(harness, result, "under load")
            if not ended.clean:
                result.problems.append(f"SIGTERM {ended.number}: the drain did not finish")
            if not behind(harness, ended):
                result.problems.append(f"SIGTERM {ended.number} came after the catch-up")
    return result
