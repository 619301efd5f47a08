"""Debian's chromium, headless, as the tests' real browser (`make tools` installs it).

Every name other than loopback resolves to nothing and chromium's own background traffic
(updates, metrics, sync) is off: the browser reaches only the bridge under test.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip(
            "chromium is not installed: run `make tools` (Debian: apt-get install chromium)"
        )
    return path


async def _run(*arguments: str, timeout: float = 60.0) -> bytes:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            *arguments,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0, f"chromium exited {process.returncode}"
    return out


async def dump_dom(url: str, budget_ms: int = 3000) -> str:
    """The DOM of `url` once its scripts ran for `budget_ms` of virtual time."""
    return (await _run(f"--virtual-time-budget={budget_ms}", "--dump-dom", url)).decode()


async def screenshot(url: str, path: Path, size: str = "1280,800", budget_ms: int = 3000) -> None:
    await _run(
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={path}",
        f"--window-size={size}",
        "--hide-scrollbars",
        url,
    )
