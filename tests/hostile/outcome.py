"""What one hostile catch-up achieved, checked against the simulator's ground truth.

Entries are compared as canonical JSON (keys sorted), so `data` must equal the served entry
as parsed JSON; the files are read line by line, so a large sink file is never held whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.e2e.helpers import rotated_parts
from tests.hostile.plan import RSS_LIMIT_MB, Plan

_SAMPLE = 10  # sequences named in a failure message


@dataclass
class Delivery:
    """What the sink holds, against the truth."""

    entries: int = 0  # in the feed
    delivered: int = 0  # distinct entries delivered with the served data
    missing: list[int] = field(default_factory=list)
    different: list[int] = field(default_factory=list)  # delivered, never with served data
    duplicates: int = 0  # copies beyond the first
    flagged: int = 0  # events carrying dicombridgeflags (e.g. metadata-unavailable)
    unknown: list[int] = field(default_factory=list)  # sequences the feed does not have
    broken_lines: int = 0
    dead_letters: int = 0
    null_entries: int = 0  # dead letters with `"entry": null`
    dead_letter_reasons: list[str] = field(default_factory=list)  # the first distinct few


@dataclass
class Memory:
    bridge_kb: int  # the bridge's VmHWM
    helpers_kb: list[int]  # each child process's VmHWM
    pair_kb: int  # bridge + largest helper
    total_kb: int  # the largest sum of the tree's VmRSS in one sample

    @property
    def peak_mb(self) -> float:
        return max(self.pair_kb, self.total_kb) / 1024


@dataclass
class Outcome:
    plan: Plan
    delivery: Delivery
    seconds: float
    finished: bool  # exited by itself within the deadline
    exit_code: int | None
    memory: Memory
    served: dict[tuple[str, str], int]
    requests: dict[str, int]
    survivors: list[int]  # child processes still alive after the bridge exited
    stderr_tail: str

    def problems(self) -> list[str]:
        d, plan = self.delivery, self.plan
        found = []
        if not self.finished:
            found.append(f"the bridge did not finish within {plan.deadline:.0f} s (killed)")
        elif self.exit_code != 0:
            found.append(f"the bridge exited with {self.exit_code}")
        if d.missing:
            found.append(f"{len(d.missing):,} of {d.entries:,} entries missing: {_few(d.missing)}")
        if d.different:
            found.append(
                f"{len(d.different):,} entries delivered with data other than served "
                f"({d.flagged:,} events flagged, e.g. metadata-unavailable): {_few(d.different)}"
            )
        if d.unknown:
            found.append(f"{len(d.unknown):,} events for unknown sequences: {_few(d.unknown)}")
        if d.dead_letters:
            found.append(
                f'{d.dead_letters:,} dead letters ({d.null_entries:,} with "entry": null), '
                f"e.g. {d.dead_letter_reasons}"
            )
        if self.memory.peak_mb >= RSS_LIMIT_MB:
            found.append(f"peak RSS of bridge + helper {self.memory.peak_mb:,.0f} MB >= "
                         f"{RSS_LIMIT_MB} MB")  # fmt: skip
        unserved = self.unserved()
        if unserved:
            found.append(f"faults never served: {', '.join(unserved)}")
        if self.survivors:
            found.append(f"child processes outlived the bridge: pids {self.survivors}")
        return found

    def unserved(self) -> list[str]:
        """The planned faults (`kind@target`) the proxy never got to serve."""
        wanted = sorted({(fault.kind, fault.target) for fault in self.plan.faults})
        return [
            f"{kind}@{target}"
            for kind, target in wanted
            if not any(k == kind and target in ("any", t) for k, t in self.served)
        ]

    def figures(self) -> list[str]:
        """The run in one line per figure."""
        d, m = self.delivery, self.memory
        served = ", ".join(
            f"{kind}@{target} {count}" for (kind, target), count in sorted(self.served.items())
        )
        requests = ", ".join(f"{name} {count:,}" for name, count in sorted(self.requests.items()))
        exit_how = f"exit {self.exit_code}" if self.finished else "killed at the deadline"
        helpers = ", ".join(f"{kb / 1024:.0f}" for kb in m.helpers_kb) or "none"
        return [
            f"entries in the feed: {d.entries:,}",
            f"entries delivered with the served data: {d.delivered:,}",
            f"missing: {len(d.missing):,}; different: {len(d.different):,}; "
            f"flagged: {d.flagged:,}; duplicates: {d.duplicates:,}; "
            f"broken lines: {d.broken_lines:,}",
            f"dead letters: {d.dead_letters:,} ({d.null_entries:,} with entry null)",
            f"duration: {self.seconds:.1f} s ({exit_how}; deadline {self.plan.deadline:.0f} s)",
            f"peak RSS bridge: {m.bridge_kb / 1024:.0f} MB",
            f"peak RSS helpers: {helpers} MB",
            f"peak RSS bridge + largest helper: {m.pair_kb / 1024:.0f} MB "
            f"(limit {RSS_LIMIT_MB} MB)",
            f"peak RSS of the process tree at one instant: {m.total_kb / 1024:.0f} MB",
            f"faults served: {served or 'none'}",
            f"feed requests at the proxy: {requests or 'none'}",
            f"child processes outliving the bridge: {len(self.survivors)}",
        ]

    def failure(self) -> str:
        """The problems, and what the bridge said last ("" when there are none)."""
        problems = self.problems()
        if not problems:
            return ""
        lines = ["PROBLEMS:", *(f"- {problem}" for problem in problems)]
        return "\n".join([*lines, "bridge stderr (last lines):", self.stderr_tail])

    def report(self) -> str:
        return "\n".join([*self.figures(), self.failure()]).rstrip()


def check_delivery(truth: bytes, sink: Path, dead_letters: Path) -> Delivery:
    """Compare the sink's events (`data`) with `truth`, the simulator's JSON array."""
    served = {entry["sequence"]: _canonical(entry) for entry in orjson.loads(truth)}
    result = Delivery(entries=len(served))
    matched: set[int] = set()
    seen: set[int] = set()
    for event in _lines(sink, result):
        data = event.get("data", event)
        result.flagged += bool(event.get("dicombridgeflags"))
        sequence = data.get("sequence")
        if sequence in seen:
            result.duplicates += 1
        seen.add(sequence)
        if sequence not in served:
            result.unknown.append(sequence)
        elif _canonical(data) == served[sequence]:
            matched.add(sequence)
    result.delivered = len(matched)
    result.missing = sorted(set(served) - seen)
    result.different = sorted(seen & set(served) - matched)
    for letter in _lines(dead_letters, None):
        result.dead_letters += 1
        result.null_entries += "entry" in letter and letter["entry"] is None
        reason = str(letter.get("reason"))[:200]
        if len(result.dead_letter_reasons) < 3 and reason not in result.dead_letter_reasons:
            result.dead_letter_reasons.append(reason)
    return result


def _lines(path: Path, delivery: Delivery | None) -> Iterator[dict[str, Any]]:
    for part in rotated_parts(path):
        with part.open("rb") as lines:
            for line in lines:
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    if delivery is not None:
                        delivery.broken_lines += 1


def _canonical(entry: dict[str, Any]) -> bytes:
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


def _few(sequences: list[int]) -> str:
    shown = ", ".join(str(s) for s in sequences[:_SAMPLE])
    return shown + (", ..." if len(sequences) > _SAMPLE else "")
