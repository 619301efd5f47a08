"""The bridge with its cursors in Azure Blob Storage (Azurite): `check`, `run` resuming from
the blob, `offsets show|set`, and a run that outlives the storage engine restarting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.helpers import read_events, run_bridge, start_bridge, stop, wait_for
from tests.peers.azurite import AzuriteProcess


def _config(tmp_path: Path, feed_url: str, offsets: dict[str, Any]) -> Path:
    path = tmp_path / "bridge.yaml"
    config = {
        "feed": {"url": feed_url, "poll_interval": "50ms"},
        "offsets": {**offsets, "commit_interval": "50ms"},
        "sinks": [{"name": "archive", "type": "file", "path": str(tmp_path / "a.jsonl")}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _sequences(tmp_path: Path) -> list[int]:
    events, broken = read_events(tmp_path / "a.jsonl")
    assert broken == 0
    return [int(event["id"].rsplit("/", 1)[1]) for event in events]


def test_run_resumes_from_the_cursor_blob(
    simulator: Callable[..., Any], azurite_offsets: dict[str, Any], tmp_path: Path
) -> None:
    sim = simulator(entries=30, seed=5)
    config = _config(tmp_path, sim.url, azurite_offsets)
    checked = run_bridge("check", "-c", str(config))
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "ok   offsets: azure_blob 127.0.0.1" in checked.stdout
    assert "writable, 0 cursor(s)" in checked.stdout

    done = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
    assert done.returncode == 0, done.stderr
    sim.store(generate={"studies": 1, "series": 1, "instances": 5})
    done = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
    assert done.returncode == 0, done.stderr
    assert _sequences(tmp_path) == list(range(1, 36))  # each once: resumed at 30

    shown = run_bridge("offsets", "show", "-c", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "archive" in shown.stdout and "35" in shown.stdout
    moved = run_bridge("offsets", "set", "-c", str(config), "--sink", "archive", "--sequence", "33")
    assert moved.returncode == 0, moved.stderr
    done = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
    assert done.returncode == 0, done.stderr
    assert _sequences(tmp_path)[35:] == [34, 35]


def test_a_running_bridge_waits_out_the_storage_restarting(
    simulator: Callable[..., Any],
    start_azurite: Callable[[], AzuriteProcess],
    azurite_container: str,
    tmp_path: Path,
) -> None:
    sim = simulator(entries=20, seed=6)
    azurite = start_azurite()
    config = _config(tmp_path, sim.url, azurite.offsets(azurite_container, timeout="1s"))
    process = start_bridge("run", "-c", str(config))
    try:
        wait_for(lambda: len(_sequences(tmp_path)) == 20, timeout=60, message="20 delivered")
        azurite.stop()
        sim.store(generate={"studies": 1, "series": 1, "instances": 5})
        wait_for(lambda: "retrying" in process.stderr.read(), timeout=60, message="commit retries")
        assert process.poll() is None, process.stderr.read()
        azurite.start()
        wait_for(lambda: len(_sequences(tmp_path)) >= 25, timeout=60, message="25 delivered")
        stop(process)
        assert process.returncode == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    shown = run_bridge("offsets", "show", "-c", str(config), "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"sequence": 25' in shown.stdout.replace('":25', '": 25'), shown.stdout
    assert sorted(set(_sequences(tmp_path))) == list(range(1, 26))
