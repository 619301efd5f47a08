"""The embedded default offset store: one sqlite file.

WAL with `synchronous=FULL`, so a commit that returned survives a power loss. One
connection serves every route: its calls run on worker threads one at a time, in call
order, so two commits of one route can never land out of order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bridge.blockingio import SerialThread, os_reason
from bridge.offsets import OffsetStoreError, StoredOffset

if TYPE_CHECKING:
    from bridge.config import SqliteOffsetsConfig

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
    feed TEXT NOT NULL,
    sink TEXT NOT NULL,
    position TEXT NOT NULL,
    sequence INTEGER,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (feed, sink)
) WITHOUT ROWID
"""
_UPSERT = """
INSERT INTO offsets (feed, sink, position, sequence, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (feed, sink) DO UPDATE SET
    position = excluded.position, sequence = excluded.sequence, updated_at = excluded.updated_at
"""
_COLUMNS = "feed, sink, position, sequence, updated_at"


class SqliteOffsetStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = SerialThread()
        self._db: sqlite3.Connection | None = _connect(path)

    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        def load(db: sqlite3.Connection) -> StoredOffset | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM offsets WHERE feed = ? AND sink = ?", (feed, sink)
            ).fetchone()
            return _offset(row) if row else None

        return await self._run(load)

    async def commit(self, feed: str, sink: str, position: str, sequence: int | None) -> None:
        now = datetime.now(UTC).isoformat()
        await self._run(lambda db: db.execute(_UPSERT, (feed, sink, position, sequence, now)))

    async def list(self, feed: str | None = None) -> list[StoredOffset]:
        def select(db: sqlite3.Connection) -> list[StoredOffset]:
            where, args = ("WHERE feed = ?", (feed,)) if feed is not None else ("", ())
            query = f"SELECT {_COLUMNS} FROM offsets {where} ORDER BY feed, sink"
            return [_offset(row) for row in db.execute(query, args)]

        return await self._run(select)

    async def delete(self, feed: str, sink: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            query = "DELETE FROM offsets WHERE feed = ? AND sink = ?"
            return db.execute(query, (feed, sink)).rowcount > 0

        return await self._run(delete)

    async def check(self) -> str:
        def probe(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")  # takes the write lock: fails if read-only
            try:
                return db.execute("SELECT count(*) FROM offsets").fetchone()[0]
            finally:
                db.execute("ROLLBACK")

        count = await self._run(probe)
        return f"sqlite {self.path}: writable, {count} cursor(s)"

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                db, self._db = self._db, None
                db.close()

        await self._thread.run(close)

    async def _run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._db is None:
                raise OffsetStoreError(f"offset store {self.path}: closed")
            try:
                return call(self._db)
            except sqlite3.Error as exc:
                raise OffsetStoreError(f"offset store {self.path}: {exc}") from None

        return await self._thread.run(run)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OffsetStoreError(f"offset store {path}: {os_reason(exc, path.parent)}") from None
    try:
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise OffsetStoreError(f"offset store {path}: {_cause(exc, path)}") from None
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(_SCHEMA)
    except sqlite3.Error as exc:
        db.close()
        raise OffsetStoreError(f"offset store {path}: {_cause(exc, path)}") from None
    return db


def _cause(exc: sqlite3.Error, path: Path) -> str:
    """sqlite's own messages are vague about the usual causes; name them when known."""
    if path.is_dir():
        return "is a directory"
    return str(exc)


def _offset(row: tuple) -> StoredOffset:
    feed, sink, position, sequence, updated_at = row
    return StoredOffset(feed, sink, position, sequence, datetime.fromisoformat(updated_at))


def open_store(config: SqliteOffsetsConfig) -> SqliteOffsetStore:
    return SqliteOffsetStore(config.path)
