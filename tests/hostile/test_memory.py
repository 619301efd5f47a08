"""The process-tree memory figures are real: a process and its child holding known amounts."""

from __future__ import annotations

import subprocess
import sys

from tests.hostile.memory import TreeMemory

MB = 1024

#: Holds 30 MB, starts a child holding 80 MB that says "ready" and waits for stdin to close.
ROOT = """
import subprocess, sys
held = b"r" * (30 << 20)
child = "import sys; held = b'c' * (80 << 20); print('ready', flush=True); sys.stdin.read()"
subprocess.run([sys.executable, "-c", child])
"""


def test_the_peaks_of_a_process_and_its_child_are_read_from_proc():
    root = subprocess.Popen(
        [sys.executable, "-c", ROOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert root.stdout is not None and root.stdout.readline() == b"ready\n"
        memory = TreeMemory(root.pid)
        memory.sample()
    finally:
        assert root.stdin is not None
        root.stdin.close()
        root.wait(30)
    assert 30 * MB <= memory.root.peak_kb < 80 * MB
    [child] = memory.descendants
    assert child.peak_kb >= 80 * MB
    assert memory.peak_pair_kb == memory.root.peak_kb + child.peak_kb
    assert memory.peak_total_kb >= 110 * MB
