"""No listening socket unless configured, and loopback by default: the metrics listener is
off unless `http` is set (then 127.0.0.1), a running bridge and its HTTP helper process
listen on nothing else, whatever sinks it drives (nor carry a secret on their command
lines), and `simulate` / `demo` bind to loopback."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from bridge.cli.parser import build_parser
from bridge.config import HttpConfig, parse_config
from tests.e2e.helpers import start_bridge, stop
from tests.peers.amqp_peer import AmqpPeer
from tests.security import canaries
from tests.security.scenario import canary_sinks, config_file
from tests.security.sockets import PROC, Listening, listening, tree

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = ("127.0.0.1", "::1")


def settle(process, done, timeout: float = 60.0) -> list[Listening]:
    """Poll the process tree's listening sockets until `done(sockets)` (or fail)."""
    deadline = time.monotonic() + timeout
    while True:
        sockets = listening(process.pid)
        if done(sockets):
            return sockets
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{sockets} (exit {process.poll()}): {process.stderr.read()}")
        time.sleep(0.05)


def test_the_listener_is_off_by_default_and_on_loopback_when_enabled():
    config = parse_config("feed: {url: 'http://h'}\nsinks: [{name: a, type: stdout}]\nhttp: {}")
    assert config.http is not None and (config.http.host, config.http.port) == ("127.0.0.1", 9464)
    assert HttpConfig().host == "127.0.0.1"
    assert parse_config("feed: {url: 'http://h'}\nsinks: [{name: a, type: stdout}]").http is None
    assert build_parser().parse_args(["simulate"]).host == "127.0.0.1"


@pytest.mark.parametrize("http", [None, {"listen": "127.0.0.1:0"}], ids=["no-http", "http"])
def test_a_running_bridge_and_its_helper_listen_only_where_configured(
    tmp_path, simulator, receiver, kafka, new_topic, peer: AmqpPeer, http
):
    sim = simulator(entries=20, token=canaries.FEED_TOKEN.value)
    hooks = receiver([canaries.WEBHOOK_SECRET.value], bearer_token=canaries.WEBHOOK_BEARER.value)
    sinks = canary_sinks(
        tmp_path,
        webhook_url=hooks.url,
        kafka_bootstrap=kafka.bootstrap,
        topic=new_topic(),
        amqp_address=peer.address,
    )
    top = {"http": http} if http else {}
    config = config_file(tmp_path, sim.url, sinks, **top)
    bridge = start_bridge("run", "-c", str(config))

    def running(found: list[Listening]) -> bool:
        """The helper process reads the feed, the listener (if any) is bound and the
        webhook and Service Bus routes delivered everything."""
        return (
            len(tree(bridge.pid)) >= 2
            and len(found) >= (1 if http else 0)
            and len(hooks.accepted_sequences()) == 20
            and len(peer.messages("dicom-changes")) == 20
        )

    try:
        settle(bridge, running)
        sockets = listening(bridge.pid)
        for pid in tree(bridge.pid):  # the helper is started without secrets too
            command = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
            canaries.assert_clean(command, f"the command line of {command!r}")
    finally:
        stop(bridge)
    if http:
        [socket] = sockets
        assert (socket.protocol, socket.host, socket.pid) == ("tcp", "127.0.0.1", bridge.pid)
    else:
        assert sockets == []


def test_simulate_listens_on_loopback_only():
    simulate = start_bridge("simulate", "--port", "0", "--entries", "10")
    try:
        [socket] = settle(simulate, lambda found: len(found) >= 1)
    finally:
        stop(simulate)
    assert socket.host in LOOPBACK and socket.pid == simulate.pid


def test_demo_listens_on_loopback_only(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    events = tmp_path / "out" / "events.jsonl"
    demo = start_bridge("demo", "--port", "0", "--entries", "50", "--follow", cwd=tmp_path)
    try:
        # Under way: the simulator listens, the bridge (its helper process reading the
        # feed) delivered the whole history.
        settle(
            demo,
            lambda found: (
                len(tree(demo.pid)) >= 3
                and events.exists()
                and len(events.read_bytes().splitlines()) >= 50
            ),
        )
        [socket] = listening(demo.pid)
    finally:
        stop(demo)
    assert socket.host in LOOPBACK and socket.pid != demo.pid
