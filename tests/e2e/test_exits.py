"""Honest exit statuses of `run`: `--exit-when-caught-up` exits 0 only once every route
caught up; an interrupt before that exits 128 + the signal's number, `--deadline` bounds
it with exit 1 naming the routes behind; plain `run` exits 0 after a clean drain."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.e2e.helpers import run_bridge, start_bridge, stop, wait_for, write_config


def stuck_config(tmp_path: Path, url: str) -> Path:
    """A route that cannot deliver (its file's directory is a file) and one that can."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    return write_config(
        tmp_path / "bridge.yaml",
        url,
        [
            {"name": "archive", "type": "file", "path": str(tmp_path / "a.jsonl")},
            {
                "name": "stuck",
                "type": "file",
                "path": str(blocker / "events.jsonl"),
                "retry": {"initial": "20ms", "max": "100ms"},
            },
        ],
        drain_timeout="1s",
    )


@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_an_interrupt_before_catching_up_is_not_success(simulator, tmp_path, sig, status):
    sim = simulator(entries=200, seed=61)
    config = stuck_config(tmp_path, sim.url)
    bridge = start_bridge("run", "-c", str(config), "--exit-when-caught-up")
    try:
        wait_for(
            lambda: "not delivered" in bridge.stderr.read(),
            timeout=60,
            message="the stuck route to retry",
        )
    finally:
        stop(bridge, sig)
    assert bridge.returncode == status, bridge.stderr.read()
    assert "interrupted before every route caught up" in bridge.stderr.read()
    assert "sink stuck" in bridge.stderr.read()


def test_plain_run_exits_0_on_sigint_and_sigterm_after_a_clean_drain(simulator, tmp_path):
    sim = simulator(entries=200, seed=62)
    config = stuck_config(tmp_path, sim.url)
    for sig in (signal.SIGINT, signal.SIGTERM):
        bridge = start_bridge("run", "-c", str(config))
        try:
            wait_for(lambda bridge=bridge: "not delivered" in bridge.stderr.read(), timeout=60)
        finally:
            stop(bridge, sig)
        assert bridge.returncode == 0, bridge.stderr.read()


def test_a_deadline_exits_1_naming_the_routes_not_caught_up(simulator, tmp_path):
    sim = simulator(entries=200, seed=63)
    config = stuck_config(tmp_path, sim.url)
    result = run_bridge("run", "-c", str(config), "--exit-when-caught-up", "--deadline", "2s")
    assert result.returncode == 1, result.stderr
    [line] = [row for row in result.stderr.splitlines() if row.startswith("dicom-bridge:")]
    assert line.startswith("dicom-bridge: deadline 2s passed before every route caught up:")
    assert "sink stuck at sequence 0 of " in line and "archive" not in line


def test_a_deadline_met_exits_0(simulator, tmp_path):
    sim = simulator(entries=200, seed=64)
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        [{"name": "archive", "type": "file", "path": str(tmp_path / "a.jsonl")}],
    )
    result = run_bridge("run", "-c", str(config), "--exit-when-caught-up", "--deadline", "10m")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--deadline", "10m"], "--deadline needs --exit-when-caught-up"),
        (["--exit-when-caught-up", "--deadline", "soon"], "invalid duration 'soon'"),
    ],
)
def test_deadline_usage_errors_exit_2(tmp_path, arguments, message):
    config = write_config(tmp_path / "bridge.yaml", "http://127.0.0.1:9", [])
    result = run_bridge("run", "-c", str(config), *arguments)
    assert result.returncode == 2 and message in result.stderr


def test_ctrl_c_at_a_terminal_stops_every_process_quietly(simulator, tmp_path):
    """Ctrl-C signals the whole foreground process group, the HTTP helper included: it
    printed a KeyboardInterrupt traceback while the bridge itself stopped cleanly."""
    sim = simulator(entries=200, seed=63)
    config = stuck_config(tmp_path, sim.url)
    bridge = start_bridge("run", "-c", str(config), new_session=True)
    try:
        wait_for(lambda: "not delivered" in bridge.stderr.read(), timeout=60)
    finally:
        os.killpg(bridge.pid, signal.SIGINT)
        bridge.wait(30)
    assert bridge.returncode == 0
    assert "Traceback" not in bridge.stderr.read()
