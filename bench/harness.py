"""Running the pieces of a benchmark as separate processes and measuring them.

The simulator, the mock Kafka cluster, the bridge and each baseline run in processes of
their own, as in production; the bridge's peak RSS is read from its own rusage (wait4).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml


@dataclass
class Run:
    entries: int
    seconds: float
    rss_mb: float = 0.0
    requests: int = 0

    @property
    def rate(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0


def feed_requests(simulator) -> int:
    stats = orjson.loads(simulator_get(simulator, "/_sim/stats"))
    return sum(
        sum(by_status.values())
        for route, by_status in stats["requests"].items()
        if "changefeed" in route
    )


def simulator_get(simulator, path: str) -> bytes:
    import httpx

    return httpx.get(simulator.url + path, timeout=60).content


def simulator_post(simulator, path: str, body: dict) -> bytes:
    import httpx

    return httpx.post(simulator.url + path, json=body, timeout=60).content


def run_bridge(workdir: Path, config: dict[str, Any], simulator=None) -> Run:
    """`dicom-bridge run --exit-when-caught-up` on `config`, twice: the catch-up, then a run
    with nothing left to do. The catch-up's time minus the idle run's is the time spent
    catching up, without the process start, imports, connecting and shutting down, which
    the baselines do not pay either. Peak RSS is the catch-up process's own (wait4)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "bridge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    before = feed_requests(simulator) if simulator else 0
    seconds, rss_mb = _timed_run(workdir, path)
    requests = feed_requests(simulator) - before if simulator else 0
    idle, _ = _timed_run(workdir, path)
    return Run(0, seconds - idle, rss_mb, requests)


def _timed_run(workdir: Path, path: Path):
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "--log-level", "WARNING", "run", "-c", str(path),
         "--exit-when-caught-up"],
        cwd=workdir,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    sampler = _TreeRss(process.pid)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    sampler.stop()
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"bridge failed: {stderr[-2000:]}")
    return seconds, max(usage.ru_maxrss / 1024, sampler.peak_mb)


class _TreeRss:
    """The peak of the bridge's RSS plus its helper's, sampled every 20 ms from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            pids = [self.pid, *_children(self.pid)]
            self.peak_mb = max(self.peak_mb, sum(_rss_kb(pid) for pid in pids) / 1024)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_json(*arguments: str) -> dict[str, Any]:
    """A baseline module run as its own process; its last stdout line is JSON."""
    output = subprocess.run(
        [sys.executable, "-m", *arguments], check=True, capture_output=True, text=True
    ).stdout
    return orjson.loads(output.strip().splitlines()[-1])


def count_lines(path: Path) -> int:
    return sum(part.read_bytes().count(b"\n") for part in path.parent.glob(path.name))
