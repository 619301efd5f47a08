"""An offset store that forgets on exit: for `replay`, whose cursor must never touch the
route's live one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bridge.offsets import Fingerprint, StoredOffset


class MemoryOffsetStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], StoredOffset] = {}

    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        return self._rows.get((feed, sink))

    async def commit(
        self,
        feed: str,
        sink: str,
        position: str,
        sequence: int | None,
        fingerprint: Fingerprint | None = None,
        epoch: int | None = None,  # no leases here: `ha:` is refused with this store
    ) -> None:
        now = datetime.now(UTC)
        self._rows[(feed, sink)] = StoredOffset(feed, sink, position, sequence, now, fingerprint)

    async def adopt(self, feed: str, legacy: str) -> list[str]:
        moved = []
        for (key, sink), row in sorted(self._rows.items()):
            if key != legacy:
                continue
            del self._rows[(key, sink)]
            if (feed, sink) not in self._rows:
                self._rows[(feed, sink)] = replace(row, feed=feed)
                moved.append(sink)
        return moved

    async def list(self, feed: str | None = None) -> list[StoredOffset]:
        return sorted(
            (row for row in self._rows.values() if feed in (None, row.feed)),
            key=lambda row: (row.feed, row.sink),
        )

    async def delete(self, feed: str, sink: str) -> bool:
        return self._rows.pop((feed, sink), None) is not None

    async def check(self) -> str:
        return "in-memory store"

    async def close(self) -> None:
        return None
