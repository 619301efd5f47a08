"""One scenario's world: the simulator, a webhook receiver, a Kafka topic and a Service Bus
queue of its own, the four-sink config, and the real `dicom-bridge run` as a subprocess
that scenarios start, SIGKILL, SIGTERM and restart.

Every bridge process is an *incarnation*. When one ends, the harness records how (kill,
term, exit code), the cursors it left committed and how many lines the file sink holds, so
that the invariants can later tell which incarnation delivered each copy of an event and
check that no committed cursor was ever ahead of what its sink had. All incarnations append
to one stderr file, checked for canary secrets.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

from tests.chaos import routes
from tests.chaos.collect import Delivered, collect, file_lines
from tests.chaos.metrics import handled
from tests.chaos.peers import ChaosPeers
from tests.e2e.helpers import bridge_command, wait_for
from tests.peers.kafka_records import Collector
from tests.peers.simulator import SimulatorProcess
from tests.peers.webhook_receiver import WebhookReceiver
from tests.security import canaries

#: How long a bridge's child process may outlive it.
ORPHAN_GRACE = 10.0
#: What the bridge logs when a shutdown gave up on undelivered entries.
DRAIN_TIMEOUT = "drain timeout"
#: The simulator's population: gaps (some wider than a page), deletes, re-stores, updates.
POPULATION = {"gap_rate": 0.01, "max_gap": 300}


@dataclass
class Incarnation:
    number: int
    started: float  # time.monotonic(), the clock the receiver and the AMQP peer stamp with
    started_wall: float  # time.time(), the clock of Kafka record timestamps
    stderr_offset: int
    how: str = ""  # "kill", "term" or "exit" once it ended
    code: int | None = None
    ended: float | None = None
    cursors: dict[str, int] = field(default_factory=dict)  # committed when it ended
    file_lines: int = 0  # lines the file sink held when it ended
    clean: bool = False  # exited 0 having drained everything (no re-delivery allowed after)
    orphans: list[int] = field(default_factory=list)  # its child processes that outlived it


class Harness:
    def __init__(
        self,
        peers: ChaosPeers,
        workdir: Path,
        name: str,
        *,
        entries: int,
        seed: int,
        tuning: routes.Tuning | None = None,
        files: Path | None = None,
        state: Path | None = None,
        **simulator: Any,
    ) -> None:
        self.peers = peers
        self.workdir = workdir
        self.name = name
        self.entries = entries
        self.seed = seed
        self.tuning = tuning or routes.Tuning()
        self.files = files or workdir / "files"
        self.state = state or workdir / "state"
        self.simulator_options = {**POPULATION, **simulator}
        self.incarnations: list[Incarnation] = []
        self.process: subprocess.Popen | None = None
        self.sim: SimulatorProcess | None = None
        self.receiver: WebhookReceiver | None = None
        self.collector: Collector | None = None
        self.topic = self.queue = ""
        self.config = workdir / "bridge.yaml"
        self.stderr_path = workdir / "bridge.stderr"
        self._stderr: IO[bytes] | None = None

    # -- setting up -----------------------------------------------------------------------

    def open(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.sim = SimulatorProcess(
                entries=self.entries,
                seed=self.seed,
                token=canaries.FEED_TOKEN.value,
                **self.simulator_options,
            ).start()
            self.receiver = WebhookReceiver(
                [canaries.WEBHOOK_SECRET.value], bearer_token=canaries.WEBHOOK_BEARER.value
            ).start()
            self.topic = self.peers.new_topic(self.name)
            self.queue = self.peers.new_queue(self.name)
            self.collector = Collector(self.peers.kafka.bootstrap, self.topic)
            self.metrics_port = _free_port()
            endpoints = routes.Endpoints(
                feed_url=self.sim.url,
                kafka_bootstrap=self.peers.kafka.bootstrap,
                topic=self.topic,
                servicebus_connection=canaries.servicebus_connection_string(
                    self.peers.amqp.address
                ),
                queue=self.queue,
                webhook_url=self.receiver.url,
                metrics_port=self.metrics_port,
            )
            routes.write(
                self.config,
                endpoints,
                self.tuning,
                files=self.files,
                state=self.state,
                dead_letters=self.workdir / "dead-letters",
            )
            self._stderr = self.stderr_path.open("ab")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
        for closing in (self.collector, self.sim):
            if closing is not None:
                closing.close()
        if self.receiver is not None:
            self.receiver.stop()
        if self._stderr is not None:
            self._stderr.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the bridge -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *options: str) -> Incarnation:
        """A new incarnation of `dicom-bridge run` (plus `options`)."""
        assert not self.running and self._stderr is not None
        self._stderr.flush()
        incarnation = Incarnation(
            len(self.incarnations), time.monotonic(), time.time(), self.stderr_path.stat().st_size
        )
        self.incarnations.append(incarnation)
        self.process = subprocess.Popen(
            bridge_command("run", "-c", str(self.config), *options),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        return incarnation

    def kill(self) -> Incarnation:
        assert self.process is not None
        children = _children(self.process.pid)
        self.process.send_signal(signal.SIGKILL)
        return self._ended("kill", timeout=30, children=children)

    def terminate(self, timeout: float) -> tuple[Incarnation, float]:
        """SIGTERM and wait; the incarnation and how long it took to exit."""
        assert self.process is not None
        children = _children(self.process.pid)
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        incarnation = self._ended("term", timeout, children=children)
        return incarnation, incarnation.ended - sent

    def wait_exit(self, timeout: float) -> Incarnation:
        """Wait for the bridge to exit on its own."""
        return self._ended("exit", timeout)

    def finish(self, timeout: float = 300) -> Incarnation:
        """Run once more until every route caught up (`--exit-when-caught-up`)."""
        self.start("--exit-when-caught-up")
        return self.wait_exit(timeout)

    def _ended(self, how: str, timeout: float, children: list[int] = ()) -> Incarnation:
        assert self.process is not None
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the bridge did not exit within {timeout}s ({how})") from None
        incarnation = self.incarnations[-1]
        incarnation.how, incarnation.code, incarnation.ended = how, code, time.monotonic()
        incarnation.clean = code == 0 and DRAIN_TIMEOUT not in self.stderr(incarnation)
        incarnation.cursors = self.cursors()
        incarnation.file_lines = file_lines(self.files / "events.jsonl")
        with contextlib.suppress(AssertionError):  # those left are reported, not raised
            wait_for(lambda: not any(map(_alive, children)), ORPHAN_GRACE, interval=0.05)
        incarnation.orphans = [child for child in children if _alive(child)]
        self.process = None
        return incarnation

    # -- observing ------------------------------------------------------------------------

    def cursors(self) -> dict[str, int]:
        """Each route's committed sequence (read-only: works on a full file system)."""
        path = self.state / "offsets.db"
        if not path.exists():
            return {}
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return dict(db.execute("SELECT sink, sequence FROM offsets"))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # a bridge starting up creates it
                return {}
            raise
        finally:
            db.close()

    def wait_forwarding(self, timeout: float = 60) -> None:
        """Wait until every route of the running bridge got entries through (or had
        caught up already)."""
        assert self.sim is not None
        latest = self.sim.state()["latest_sequence"] or 0

        def all_forwarding() -> bool:
            assert self.running, f"the bridge exited: {self.stderr()[-2000:]}"
            counts, cursors = handled(self.metrics_port), self.cursors()
            return bool(counts) and all(
                counts.get(sink, 0) > 0 or cursors.get(sink, 0) >= latest for sink in routes.SINKS
            )

        wait_for(all_forwarding, timeout, interval=0.1, message="every sink forwarding")

    def stderr(self, incarnation: Incarnation | None = None) -> str:
        """What the bridge wrote on stderr: one incarnation's, or all of it."""
        if self._stderr is not None:
            self._stderr.flush()
        data = self.stderr_path.read_bytes()
        if incarnation is not None:
            following = [i for i in self.incarnations if i.number > incarnation.number]
            end = following[0].stderr_offset if following else len(data)
            data = data[incarnation.stderr_offset : end]
        return data.decode(errors="replace")

    def truth(self) -> list[dict[str, Any]]:
        assert self.sim is not None
        return self.sim.entries()

    def deliveries(self) -> dict[str, Delivered]:
        """What each sink holds, every copy attributed to the incarnation that sent it."""
        assert self.collector is not None and self.receiver is not None
        return collect(
            self.incarnations,
            file=self.files / "events.jsonl",
            kafka=self.collector.read_to_end(),
            servicebus=self.peers.amqp.arrivals(self.queue),
            webhook=self.receiver.accepted(),
            dead_letters=self.workdir / "dead-letters",
        )


def _children(pid: int) -> list[int]:
    """The child processes of `pid` (the feed's HTTP helper)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
