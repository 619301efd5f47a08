"""Request counters, read by tests through `GET /_sim/stats` (e.g. how many pages a bridge
fetched, how many 429s it was given) and cleared with `POST /_sim/stats/reset`."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._requests: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self._faults: Counter[str] = Counter()
        self._entries = 0

    def request(self, route: str, status: int, entries: int = 0) -> None:
        self._requests[route][status] += 1
        self._entries += entries

    def fault(self, kind: str) -> None:
        self._faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": {
                route: {str(status): count for status, count in sorted(counts.items())}
                for route, counts in sorted(self._requests.items())
            },
            "total": sum(sum(counts.values()) for counts in self._requests.values()),
            "entries_served": self._entries,
            "faults": dict(sorted(self._faults.items())),
        }
