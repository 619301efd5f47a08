"""Peak resident memory of a process and all its descendants, read from /proc.

A thread samples the tree every `interval`: each process's `VmHWM` (the kernel's own peak,
so a spike between two samples is not missed while the process lives) and the sum of the
tree's `VmRSS` at that instant. Processes are told apart by what they run (`-m module`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self


@dataclass
class ProcessPeak:
    pid: int
    name: str  # the module it runs (`bridge`, `bridge.helper`), else its program
    peak_kb: int = 0  # VmHWM when last seen


class TreeMemory:
    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.processes: dict[int, ProcessPeak] = {}
        self.peak_total_kb = 0  # the largest sum of the tree's VmRSS in one sample
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    @property
    def root(self) -> ProcessPeak:
        return self.processes.get(self.pid) or ProcessPeak(self.pid, "?")

    @property
    def descendants(self) -> list[ProcessPeak]:
        return [peak for pid, peak in self.processes.items() if pid != self.pid]

    @property
    def peak_pair_kb(self) -> int:
        """The root's peak plus its largest descendant's: bridge + helper at their worst
        (a bound on their simultaneous peak, whenever one helper lives at a time)."""
        return self.root.peak_kb + max((p.peak_kb for p in self.descendants), default=0)

    def _run(self) -> None:
        while True:
            self.sample()
            if self._done.wait(self.interval):
                self.sample()
                return

    def sample(self) -> None:
        total = 0
        for pid in [self.pid, *_descendants(self.pid)]:
            status = _status(pid)
            if not status:
                continue  # gone, or a zombie
            if pid not in self.processes:
                self.processes[pid] = ProcessPeak(pid, _name(pid))
            peak = self.processes[pid]
            peak.peak_kb = max(peak.peak_kb, status.get("VmHWM", 0))
            total += status.get("VmRSS", 0)
        self.peak_total_kb = max(self.peak_total_kb, total)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/<pid>/status (empty for a process that is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    figures = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if value.endswith(" kB"):
            figures[name] = int(value.split()[0])
    return figures


def _name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    return Path(argv[0]).name
