"""Bridge replicas as real processes over one shared offset store, and what a test reads
of them: each replica's role (from its /metrics), the events all of them delivered.

The engine of the shared store is one fixture parameter (`engine` in conftest.py): an
`offsets:` mapping for the config, and a way to read the cursors directly.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from tests.e2e.helpers import read_events, sequences, start_bridge

#: One client for every sample (a new one per request costs more than the request).
_HTTP = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Replica:
    number: int
    process: subprocess.Popen[str]
    port: int
    output: Path

    def metric(self, name: str, timeout: float = 0.2) -> float | None:
        """The value of an unlabelled metric; None when the replica does not answer."""
        try:
            text = _HTTP.get(f"http://127.0.0.1:{self.port}/metrics", timeout=timeout).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def ready(self, timeout: float = 0.5) -> tuple[int, dict[str, Any]] | None:
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=timeout)
        except httpx.HTTPError:
            return None
        return answer.status_code, answer.json()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def delivered(self) -> list[int]:
        events, _ = read_events(self.output)
        return sequences(events)

    def log(self) -> str:
        return str(self.process.stderr.read())  # type: ignore[union-attr]


@dataclass
class Replicas:
    """Starts replicas of one config (each its own listener and output file)."""

    directory: Path
    feed_url: str
    offsets: dict[str, Any]
    lease_ttl: str | None = "3s"  # None: without `ha:`
    started: list[Replica] = field(default_factory=list)

    def start(self) -> Replica:
        number = len(self.started)
        port = free_port()
        output = self.directory / f"out-{number}.jsonl"
        config = {
            "feed": {"url": self.feed_url, "poll_interval": "50ms"},
            "offsets": self.offsets,
            "http": {"listen": f"127.0.0.1:{port}"},
            "drain_timeout": "2s",
            "sinks": [{"name": "archive", "type": "file", "path": str(output)}],
        }
        if self.lease_ttl is not None:
            config["ha"] = {"lease_ttl": self.lease_ttl}
        path = self.directory / f"replica-{number}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        process = start_bridge("run", "--config", str(path), cwd=self.directory)
        replica = Replica(number, process, port, output)
        self.started.append(replica)
        return replica

    @property
    def alive(self) -> list[Replica]:
        return [replica for replica in self.started if replica.alive]

    def leaders(self) -> list[Replica]:
        return [r for r in self.alive if r.metric("dicom_bridge_leader") == 1]

    def wait_for_leader(self, timeout: float, besides: Replica | None = None) -> Replica:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = [r for r in self.leaders() if r is not besides]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.05)
        raise AssertionError(f"no leader within {timeout}s")

    def delivered(self) -> list[int]:
        return [sequence for replica in self.started for sequence in replica.delivered()]

    def stop_all(self) -> None:
        for replica in self.started:
            if replica.alive:
                replica.process.send_signal(signal.SIGCONT)
                replica.process.send_signal(signal.SIGTERM)
        for replica in self.started:
            try:
                replica.process.wait(30)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(10)


class Watch:
    """Every 250 ms: how many replicas say they lead (asked together), and how many
    distinct sequences all of them delivered (their files tailed); keeps the worst of both."""

    def __init__(self, replicas: Replicas) -> None:
        self.replicas = replicas
        self.most_leaders = 0
        self.samples = 0
        self.longest_gap = 0.0
        self.gap_between = (0.0, 0.0)  # monotonic times of the longest gap
        self._seen: set[int] = set()
        self._read: dict[Path, int] = {}
        self._moved = time.monotonic()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._leaders, daemon=True),
            threading.Thread(target=self._deliveries, daemon=True),
        ]

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _leaders(self) -> None:
        due = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            while not self._stop.wait(max(0.0, (due := due + 0.25) - time.monotonic())):
                replicas = list(self.replicas.alive)
                answers = pool.map(lambda r: r.metric("dicom_bridge_leader"), replicas)
                self.most_leaders = max(self.most_leaders, sum(a == 1 for a in answers))
                self.samples += 1

    def _deliveries(self) -> None:
        while not self._stop.wait(0.25):
            before = len(self._seen)
            for replica in list(self.replicas.started):
                self._tail(replica.output)
            now = time.monotonic()
            if len(self._seen) > before:
                if now - self._moved > self.longest_gap:
                    self.longest_gap, self.gap_between = now - self._moved, (self._moved, now)
                self._moved = now

    def _tail(self, path: Path) -> None:
        """The sequences of the lines appended to `path` since the last look."""
        try:
            with path.open("rb") as file:
                file.seek(self._read.get(path, 0))
                data = file.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        self._read[path] = self._read.get(path, 0) + len(complete)
        for line in complete.splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):  # a line a SIGKILL cut
                event = orjson.loads(line)
                self._seen.add(event["data"]["sequence"] if "data" in event else event["sequence"])
