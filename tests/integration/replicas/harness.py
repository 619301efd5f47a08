"""Bridge replicas as real processes over one shared offset store, and what a test reads
of them: each replica's role (from its /metrics), the events all of them delivered.

The engine of the shared store is one fixture parameter (`engine` in conftest.py): an
`offsets:` mapping for the config, and a way to read the cursors directly.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.helpers import read_events, sequences, start_bridge


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
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=timeout).text
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
    lease_ttl: str = "3s"
    started: list[Replica] = field(default_factory=list)

    def start(self) -> Replica:
        number = len(self.started)
        port = free_port()
        output = self.directory / f"out-{number}.jsonl"
        config = {
            "feed": {"url": self.feed_url, "poll_interval": "50ms"},
            "offsets": self.offsets,
            "ha": {"lease_ttl": self.lease_ttl},
            "http": {"listen": f"127.0.0.1:{port}"},
            "drain_timeout": "2s",
            "sinks": [{"name": "archive", "type": "file", "path": str(output)}],
        }
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
    """Every 250 ms: how many replicas say they lead, and how many distinct sequences all
    of them delivered; keeps the worst of both."""

    def __init__(self, replicas: Replicas) -> None:
        self.replicas = replicas
        self.most_leaders = 0
        self.samples = 0
        self.longest_gap = 0.0
        self._count = 0
        self._moved = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            replicas = list(self.replicas.alive)
            leading = sum(r.metric("dicom_bridge_leader") == 1 for r in replicas)
            self.most_leaders = max(self.most_leaders, leading)
            self.samples += 1
            count = len(set(self.replicas.delivered()))
            now = time.monotonic()
            if count > self._count:
                self.longest_gap = max(self.longest_gap, now - self._moved)
                self._count, self._moved = count, now
