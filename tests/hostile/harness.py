"""One hostile catch-up: the simulator, the hostile proxy in front of it, and the real
`dicom-bridge run --exit-when-caught-up` reading through the proxy into a file sink with a
file dead-letter target, default settings otherwise.

The bridge runs in a session of its own (so that it and its HTTP helper can be killed as a
group) under a capped address space; the memory of the whole process tree is sampled while
it runs. After the deadline it is killed, and what it delivered is checked all the same.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.hostile.memory import TreeMemory
from tests.hostile.outcome import Memory, Outcome, check_delivery
from tests.hostile.plan import ADDRESS_SPACE, Plan
from tests.hostile.proxy import HostileProxy
from tests.peers.simulator import SimulatorProcess

#: How long the bridge's children may take to exit after it did.
CHILD_GRACE = 10.0
#: How often the harness looks whether the bridge exited.
POLL = 0.1
#: Lines of the bridge's stderr a failure shows.
STDERR_LINES = 15


@dataclass
class _Run:
    seconds: float
    finished: bool
    exit_code: int | None
    memory: Memory
    survivors: list[int]
    stderr_tail: str


def run(plan: Plan, workdir: Path) -> Outcome:
    """Run `plan`; the config, the sink's files and the bridge's stderr stay in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"entries": plan.entries, "seed": plan.seed}
    if plan.metadata_size:
        options["metadata_size"] = plan.metadata_size
    with SimulatorProcess(**options) as simulator:
        truth = simulator.entries_bytes(include_metadata=plan.include_metadata)
        with HostileProxy(simulator.url, plan.faults) as proxy:
            bridge = _run_bridge(plan, _config(plan, workdir, proxy.url))
            served, requests = proxy.served(), proxy.requests()
    delivery = check_delivery(truth, workdir / "events.jsonl", workdir / "dead-letters.jsonl")
    return Outcome(
        plan=plan,
        delivery=delivery,
        seconds=bridge.seconds,
        finished=bridge.finished,
        exit_code=bridge.exit_code,
        memory=bridge.memory,
        served=served,
        requests=requests,
        survivors=bridge.survivors,
        stderr_tail=bridge.stderr_tail,
    )


def _config(plan: Plan, workdir: Path, url: str) -> Path:
    config = {
        "feed": {
            "url": url,
            "include_metadata": plan.include_metadata,
            "timeout": plan.feed_timeout,
        },
        "offsets": {"type": "sqlite", "path": str(workdir / "offsets.db")},
        "sinks": [
            {
                "name": "archive",
                "type": "file",
                "path": str(workdir / "events.jsonl"),
                "dead_letter": {"type": "file", "path": str(workdir / "dead-letters.jsonl")},
            }
        ],
    }
    path = workdir / "bridge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _run_bridge(plan: Plan, config: Path) -> _Run:
    """Run the bridge to its exit, or kill it at the deadline."""
    with (config.parent / "bridge.stderr").open("w+b") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "-c", str(config), "--exit-when-caught-up"],
            cwd=config.parent,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_cap_address_space,
        )
        sampler = TreeMemory(process.pid).start()
        try:
            finished = _wait(process, started + plan.deadline)
            seconds = time.monotonic() - started
            if not finished:
                _kill_group(process.pid)
            code = process.wait()
            sampler.stop()
            survivors = _surviving(process.pid, [p.pid for p in sampler.descendants])
        finally:
            sampler.stop()
            _kill_group(process.pid)
            process.wait()
        stderr.seek(0)
        lines = stderr.read().decode(errors="replace").splitlines()
        tail = [line[:300] for line in lines[-STDERR_LINES:]]
    memory = Memory(
        bridge_kb=sampler.root.peak_kb,
        helpers_kb=[p.peak_kb for p in sampler.descendants],
        pair_kb=sampler.peak_pair_kb,
        total_kb=sampler.peak_total_kb,
    )
    return _Run(seconds, finished, code, memory, survivors, "\n".join(tail))


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _wait(process: subprocess.Popen, deadline: float) -> bool:
    """Whether the process exited before the deadline."""
    while process.poll() is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def _surviving(group: int, children: list[int]) -> list[int]:
    """The children of the group still alive `CHILD_GRACE` seconds after the bridge exited."""
    deadline = time.monotonic() + CHILD_GRACE
    while True:
        alive = [pid for pid in children if _in_group(pid, group)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(POLL)


def _in_group(pid: int, group: int) -> bool:
    try:
        if os.getpgid(pid) != group:
            return False
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, OSError):
        return False
    return state != "Z"


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
