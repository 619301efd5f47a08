"""Bridge plus helper stay under 300 MB with default settings whatever the feed sends.

The bridge runs as `dicom-bridge run --exit-when-caught-up` with a capped address space
(so a regression fails with MemoryError instead of taking the machine down); the peak RSS
(`VmHWM`) of the bridge and of its helper process is polled while it runs."""

from __future__ import annotations

import resource
import subprocess
import tempfile
import time
from pathlib import Path

from pydantic import ByteSize, TypeAdapter

from bridge.config import FeedConfig
from tests.e2e.helpers import bridge_command, read_events, write_config
from tests.peers.hostile_feed import HostileFeed

LIMIT_MB = 300
DEFAULT_CAP = TypeAdapter(ByteSize).validate_python(
    FeedConfig.model_fields["max_page_bytes"].default
)
ADDRESS_SPACE = 3 << 30  # per process: far above the limit, far below the machine


def run_measured(config: Path, timeout: float = 90.0) -> tuple[int, str, dict[int, int]]:
    """Run the bridge to completion; (exit code, stderr, peak RSS in MB by process id)."""

    def cap_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    peaks: dict[int, int] = {}
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            bridge_command("run", "-c", str(config), "--exit-when-caught-up"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            preexec_fn=cap_address_space,
        )
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None and time.monotonic() < deadline:
                for pid in (process.pid, *_children(process.pid)):
                    peaks[pid] = max(peaks.get(pid, 0), _peak_rss_mb(pid))
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
        stderr.seek(0)
        print(f"peak RSS by process (MB): {peaks}")  # shown with -s
        return process.returncode, stderr.read(), peaks


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def _peak_rss_mb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def configure(root: Path, url: str, **feed: object) -> Path:
    sink = {
        "name": "archive",
        "type": "file",
        "path": str(root / "events.jsonl"),
        "fsync": False,
        "dead_letter": {"type": "file", "path": str(root / "dead.jsonl")},
    }
    feed = {"retry": {"initial": "10ms", "max": "200ms"}, **feed}
    return write_config(root / "bridge.yaml", url, [sink], feed=feed)


def test_a_huge_junk_body_and_a_gzip_bomb_leave_memory_bounded(tmp_path):
    """Regression: a 200 MB page took the bridge to 836 MB, a gzip body inflating to 2 GB
    took it to 9 GB."""
    with HostileFeed(entries=2_000, bomb_bytes=1 << 30, junk_bytes=300 << 20) as feed:
        feed.script("junk", "gzipbomb", "junk", "gzipbomb")
        code, stderr, peaks = run_measured(configure(tmp_path, feed.url))
    assert code == 0, stderr[-2000:]
    events, _ = read_events(tmp_path / "events.jsonl")
    assert len(events) == 2_000
    assert not (tmp_path / "dead.jsonl").exists() or not (tmp_path / "dead.jsonl").read_bytes()
    assert sum(peaks.values()) < LIMIT_MB, f"peak RSS by process (MB): {peaks}"


def test_pages_at_the_cap_leave_memory_bounded(tmp_path):
    """Every window just under the default max_page_bytes, with metadata: the bound the
    README's arithmetic promises."""
    metadata_bytes = DEFAULT_CAP * 95 // 100 // 100 - 500  # windows of 100 entries
    with HostileFeed(entries=3_000, metadata_bytes=metadata_bytes) as feed:
        code, stderr, peaks = run_measured(configure(tmp_path, feed.url, include_metadata=True))
    assert code == 0, stderr[-2000:]
    events, _ = read_events(tmp_path / "events.jsonl")
    assert len(events) == 3_000
    assert sum(peaks.values()) < LIMIT_MB, f"peak RSS by process (MB): {peaks}"
