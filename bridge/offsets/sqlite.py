"""The embedded default offset store: one sqlite file.

WAL with `synchronous=FULL`, so a commit that returned survives a power loss. One
connection serves every route: its calls run on worker threads one at a time, in call
order, so two commits of one route can never land out of order.

The file is the only record of where each route is, so a missing or damaged one is never
taken for a new store: a 0-byte or unreadable file is refused at open (a new store is
created whole under a temporary name, so a crash cannot leave an empty one), and every
write checks that the path still names the file opened, so a state directory deleted or
replaced under a running bridge stops it instead of taking commits into a deleted file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bridge.core.blockingio import SerialThread, os_reason
from bridge.offsets import Fingerprint, OffsetStoreError, StoredOffset

if TYPE_CHECKING:
    from bridge.config import SqliteOffsetsConfig

T = TypeVar("T")
log = logging.getLogger("bridge.offsets")

SCHEMA_VERSION = 1  # 0: no fingerprint column; 1: fingerprint
_SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
    feed TEXT NOT NULL,
    sink TEXT NOT NULL,
    position TEXT NOT NULL,
    sequence INTEGER,
    updated_at TEXT NOT NULL,
    fingerprint TEXT,
    PRIMARY KEY (feed, sink)
) WITHOUT ROWID
"""
_UPSERT = """
INSERT INTO offsets (feed, sink, position, sequence, updated_at, fingerprint)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (feed, sink) DO UPDATE SET
    position = excluded.position, sequence = excluded.sequence,
    updated_at = excluded.updated_at, fingerprint = excluded.fingerprint
"""
_COLUMNS = "feed, sink, position, sequence, updated_at, fingerprint"


class SqliteOffsetStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = SerialThread()
        self._db: sqlite3.Connection | None
        self._db, self._identity = _open(path)

    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        def load(db: sqlite3.Connection) -> StoredOffset | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM offsets WHERE feed = ? AND sink = ?", (feed, sink)
            ).fetchone()
            return _offset(row) if row else None

        return await self._run(load)

    async def commit(
        self,
        feed: str,
        sink: str,
        position: str,
        sequence: int | None,
        fingerprint: Fingerprint | None = None,
        epoch: int | None = None,  # no leases here: `ha:` is refused with this store
    ) -> None:
        now = datetime.now(UTC).isoformat()
        row = (feed, sink, position, sequence, now, fingerprint and fingerprint.encode())
        await self._write(lambda db: db.execute(_UPSERT, row))

    async def adopt(self, feed: str, legacy: str) -> list[str]:
        def adopt(db: sqlite3.Connection) -> list[str]:
            with _transaction(db):
                query = "SELECT sink FROM offsets WHERE feed = ? ORDER BY sink"
                taken = {sink for (sink,) in db.execute(query, (feed,))}
                moved = [sink for (sink,) in db.execute(query, (legacy,)) if sink not in taken]
                db.executemany(
                    "UPDATE offsets SET feed = ? WHERE feed = ? AND sink = ?",
                    [(feed, legacy, sink) for sink in moved],
                )
                db.execute("DELETE FROM offsets WHERE feed = ?", (legacy,))
            return moved

        return await self._write(adopt)

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

        return await self._write(delete)

    async def check(self) -> str:
        def probe(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")  # takes the write lock: fails if read-only
            try:
                count: int = db.execute("SELECT count(*) FROM offsets").fetchone()[0]
                return count
            finally:
                db.execute("ROLLBACK")

        count = await self._write(probe)
        return f"sqlite {self.path}: writable, {count} cursor(s)"

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                db, self._db = self._db, None
                db.close()

        await self._thread.run(close)

    async def _write(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """`call`, then make sure it went to the file at the path (not one deleted since)."""

        def write(db: sqlite3.Connection) -> T:
            result = call(db)
            self._still_at_path()
            return result

        return await self._run(write)

    def _still_at_path(self) -> None:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            what = "removed"
        except OSError as exc:
            raise OffsetStoreError(f"offset store {os_reason(exc, self.path)}") from None
        else:
            if (found.st_dev, found.st_ino) == self._identity:
                return
            what = "replaced by another file"
        raise OffsetStoreError(
            f"offset store {self.path}: the file was {what} while the bridge ran; stopping "
            "rather than committing cursors nobody will read (restore the state, or restart "
            "on the new one)"
        )

    async def _run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            if self._db is None:
                raise OffsetStoreError(f"offset store {self.path}: closed")
            try:
                return call(self._db)
            except sqlite3.Error as exc:
                raise OffsetStoreError(f"offset store {self.path}: {exc}") from None

        return await self._thread.run(run)


def _open(path: Path) -> tuple[sqlite3.Connection, tuple[int, int]]:
    """The connection, and the (device, inode) of the file it opened."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create(path)
        problem = _unusable(path)
        if problem:
            raise OffsetStoreError(f"offsets.path {path}: {problem}")
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            _prepare(db, path)
            found = os.stat(path)
        except BaseException:
            db.close()
            raise
    except OSError as exc:
        raise OffsetStoreError(f"offsets.path {path}: {os_reason(exc, path)}") from None
    except sqlite3.Error as exc:
        raise OffsetStoreError(f"offsets.path {path}: {_cause(exc, path)}") from None
    return db, (found.st_dev, found.st_ino)


def _create(path: Path) -> None:
    """A new store, written whole under a temporary name and linked into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    temporary.unlink(missing_ok=True)
    db = sqlite3.connect(temporary, isolation_level=None)
    try:
        _prepare(db, path)
    finally:
        db.close()
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process created it meanwhile: use that one
    except OSError:  # a file system without hard links
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _unusable(path: Path) -> str | None:
    """Why an existing file cannot be the store, where sqlite would not say (it takes an
    empty file for a new database)."""
    if path.is_dir():
        return "is a directory"
    if path.stat().st_size == 0:
        return (
            "the file is empty (0 bytes), not an offset store: it was truncated or replaced; "
            "restore it, or delete it to start every route afresh at its `start` position"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        return "permission denied: the bridge must be able to read and write it"
    return None


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """Durability settings, and the schema (created, or upgraded from an older version;
    nothing is written when it is current: a store on a full disk still opens)."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    if _schema_version(db, path) == SCHEMA_VERSION:
        return
    with _transaction(db):
        if _schema_version(db, path) == SCHEMA_VERSION:  # another process was first
            return
        db.execute(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(offsets)")}
        if "fingerprint" not in columns:
            db.execute("ALTER TABLE offsets ADD COLUMN fingerprint TEXT")
            log.info("offset store %s: upgraded (cursors now keep a fingerprint)", path)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _schema_version(db: sqlite3.Connection, path: Path) -> int:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise OffsetStoreError(
            f"offset store {path}: written by a newer dicom-bridge (schema {version}, "
            f"this version reads up to {SCHEMA_VERSION}); run that version"
        )
    return version


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _cause(exc: sqlite3.Error, path: Path) -> str:
    """sqlite's own messages are vague about the usual causes; name them when known."""
    if path.is_dir():
        return "is a directory"
    if not os.access(path.parent, os.W_OK):
        return f"{exc} (cannot create files in {path.parent})"
    return str(exc)


def _offset(row: tuple[Any, ...]) -> StoredOffset:
    feed, sink, position, sequence, updated_at, fingerprint = row
    return StoredOffset(
        feed,
        sink,
        position,
        sequence,
        datetime.fromisoformat(updated_at),
        Fingerprint.decode(fingerprint),
    )


def open_store(config: SqliteOffsetsConfig) -> SqliteOffsetStore:
    return SqliteOffsetStore(config.path)
