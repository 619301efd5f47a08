"""`dicom-bridge check` on the broker sinks (redis, nats, rabbitmq), through the real CLI:
one line for the machine's server, one FAIL line naming the cause for a port nobody
listens on, never a secret or a traceback."""

from __future__ import annotations

import os
import secrets
import socket
import time

import pytest

from tests.e2e.helpers import run_bridge, write_config

SECRET = f"check-secret-{secrets.token_hex(6)}"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sinks(port: dict[str, int]) -> list[dict]:
    name = f"CHECK_{os.getpid()}"
    return [
        {
            "name": "redis",
            "type": "redis",
            "url": f"redis://127.0.0.1:{port['redis']}/0",
            "stream": f"check.{name}",
            "password": SECRET,
            "timeout": "2s",
        },
        {
            "name": "nats",
            "type": "nats",
            "servers": f"nats://127.0.0.1:{port['nats']}",
            "subject": "check.{action}",
            "stream": name,
            "token": SECRET,
            "timeout": "2s",
        },
        {
            "name": "rabbitmq",
            "type": "rabbitmq",
            "url": f"amqp://guest:{SECRET}@127.0.0.1:{port['rabbitmq']}/",
            "exchange": f"check.{name}",
            "timeout": "2s",
        },
    ]


def test_check_reports_unreachable_brokers_in_one_line_each(simulator, tmp_path):
    sim = simulator(entries=10)
    ports = {kind: closed_port() for kind in ("redis", "nats", "rabbitmq")}
    config = write_config(tmp_path / "bridge.yaml", sim.url, sinks(ports))
    started = time.monotonic()
    result = run_bridge("check", "-c", str(config), timeout=60)
    assert result.returncode == 1, result.stderr
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split(":")[0] for line in failures] == [
        "FAIL sink redis",
        "FAIL sink nats",
        "FAIL sink rabbitmq",
    ]
    for line, kind in zip(failures, ("redis", "nats", "rabbitmq"), strict=True):
        assert f"127.0.0.1:{ports[kind]}" in line
        assert "refused" in line.lower(), line
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("kind", ["redis", "nats", "rabbitmq"])
def test_check_describes_a_reachable_broker(simulator, tmp_path, kind):
    sim = simulator(entries=10)
    [sink] = [
        s for s in sinks({"redis": 6379, "nats": 4222, "rabbitmq": 5672}) if s["name"] == kind
    ]
    sink.pop("password", None), sink.pop("token", None)  # the machine's servers have none
    if kind == "rabbitmq":
        sink["url"] = "amqp://guest:guest@127.0.0.1:5672/"
    config = write_config(tmp_path / "bridge.yaml", sim.url, [sink])
    result = run_bridge("check", "-c", str(config), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith(f"ok   sink {kind}")]
    print(line)
