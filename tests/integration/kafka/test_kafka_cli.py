"""`dicom-bridge check` on Kafka sinks, through the real CLI."""

from __future__ import annotations

import socket
import time

from tests.e2e.helpers import run_bridge, write_config


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kafka_sink(bootstrap: str, topic: str, **options) -> dict:
    return {
        "name": "events",
        "type": "kafka",
        "bootstrap_servers": bootstrap,
        "topic": topic,
        **options,
    }


def test_check_reports_an_unreachable_bootstrap_in_one_line(simulator, tmp_path):
    sim = simulator(entries=10)
    bootstrap = f"127.0.0.1:{closed_port()}"
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        [kafka_sink(bootstrap, "dicom.changes", producer={"sasl.password": "hunter2"})],
    )

    started = time.monotonic()
    result = run_bridge("check", "-c", str(config), timeout=60)
    elapsed = time.monotonic() - started

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    [failure] = [line for line in lines if line.startswith("FAIL")]  # only the sink fails
    assert failure.startswith(f"FAIL sink events: kafka {bootstrap}: unreachable (_TRANSPORT: ")
    assert f"Connect to ipv4#{bootstrap} failed: Connection refused" in failure
    assert any(line.startswith("ok   feed:") for line in lines)
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert elapsed < 10


def test_check_describes_a_reachable_topic(simulator, kafka, new_topic, tmp_path):
    sim = simulator(entries=10)
    topic = new_topic(6)
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        [
            kafka_sink(
                kafka.bootstrap,
                topic,
                dead_letter={
                    "type": "kafka",
                    "bootstrap_servers": kafka.bootstrap,
                    "topic": "dicom.dlq.{action}",
                },
            )
        ],
    )

    result = run_bridge("check", "-c", str(config), timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert (
        f"ok   sink events: kafka {kafka.bootstrap}: topic '{topic}' has 6 partitions, 3 brokers"
        in lines
    )
    assert (
        f"ok   sink events dead_letter: kafka {kafka.bootstrap}: reachable, 3 brokers "
        "(topic template not checked)"
    ) in lines
