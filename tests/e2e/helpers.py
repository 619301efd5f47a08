"""Running the real `dicom-bridge` CLI as a subprocess and reading what its sinks wrote."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml


def write_config(path: Path, feed_url: str, sinks: list[dict[str, Any]], **top: Any) -> Path:
    config = {
        "feed": {"url": feed_url, "poll_interval": "50ms", **top.pop("feed", {})},
        "offsets": {
            "type": "sqlite",
            "path": str(path.parent / "offsets.db"),
            **top.pop("offsets", {}),
        },
        "sinks": sinks,
        **top,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def bridge_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "bridge", *arguments]


def run_bridge(
    *arguments: str,
    timeout: float = 120.0,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
):
    """Run the CLI to completion (in `env`, default: this process's environment); returns
    the CompletedProcess (text output)."""
    return subprocess.run(
        bridge_command(*arguments),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def start_bridge(
    *arguments: str, cwd: Path | None = None, new_session: bool = False
) -> subprocess.Popen:
    """The CLI in the background. Its stderr goes to a temporary file (a pipe nobody reads
    would block a chatty bridge); `process.stderr.read()` returns all of it. `new_session`:
    in a process group of its own, as at a terminal (`os.killpg` is then Ctrl-C)."""
    stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed with the process's files
    process = subprocess.Popen(
        bridge_command(*arguments),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        cwd=cwd,
        start_new_session=new_session,
    )
    process.stderr = _FromStart(stderr)
    return process


class _FromStart:
    """A file whose `read()` returns everything written to it so far."""

    def __init__(self, file) -> None:
        self.file = file

    def read(self) -> str:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> float:
    """Send `sig` and wait; returns the seconds the process took to exit."""
    started = time.monotonic()
    process.send_signal(sig)
    process.wait(timeout)
    return time.monotonic() - started


def rotated_parts(path: Path) -> list[Path]:
    """A file sink's files in the order they were written: the rotated parts
    `<stem>.<N><suffix>` by N, then the current file."""
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(path.stem)}\.(\d+){re.escape(path.suffix)}")
    numbered = [
        (int(m[1]), part) for part in path.parent.iterdir() if (m := pattern.fullmatch(part.name))
    ]
    return [part for _, part in sorted(numbered)] + ([path] if path.exists() else [])


def read_events(path: Path) -> tuple[list[dict], int]:
    """Events of a JSON Lines file (all rotated parts, in write order), and how many lines
    were broken (a SIGKILL can cut the last line of a batch)."""
    events, broken = [], 0
    for part in rotated_parts(path):
        for line in part.read_bytes().splitlines():
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                broken += 1
    return events, broken


def sequences(events: list[dict]) -> list[int]:
    return [event["data"]["sequence"] if "data" in event else event["sequence"] for event in events]


def wait_for(condition, timeout: float, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


def env_without(*names: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in names}
