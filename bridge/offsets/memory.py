"""An offset store that forgets on exit: for `replay`, whose cursor must never touch the
route's live one."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.offsets import StoredOffset


class MemoryOffsetStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], StoredOffset] = {}

    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        return self._rows.get((feed, sink))

    async def commit(self, feed: str, sink: str, position: str, sequence: int | None) -> None:
        self._rows[(feed, sink)] = StoredOffset(feed, sink, position, sequence, datetime.now(UTC))

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
