"""The embedded sqlite offset store: what only sqlite does (files, durability, versions);
the behaviour every store shares is in tests/offsets/test_contract.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from bridge.config import SqliteOffsetsConfig
from bridge.offsets import Fingerprint, OffsetStore, OffsetStoreError, open_store

FEED = "https://h.example"


@pytest.fixture
async def store(tmp_path: Path):
    opened = open_store(SqliteOffsetsConfig(path=tmp_path / "state" / "offsets.db"))
    yield opened
    await opened.close()


async def test_durability_settings(store: OffsetStore, tmp_path: Path) -> None:
    await store.commit(FEED, "a", "1", 1)
    db = sqlite3.connect(tmp_path / "state" / "offsets.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


async def test_closed_store_raises(store: OffsetStore) -> None:
    await store.close()
    with pytest.raises(OffsetStoreError, match="closed"):
        await store.load(FEED, "a")


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    path = tmp_path / "state" / "offsets.db"
    with pytest.raises(OffsetStoreError) as caught:
        open_store(SqliteOffsetsConfig(path=path))
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    assert "(EEXIST)" in message or "(ENOTDIR)" in message


def test_path_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "offsets.db").mkdir()
    with pytest.raises(OffsetStoreError, match=r"offsets\.db: is a directory$"):
        open_store(SqliteOffsetsConfig(path=tmp_path / "offsets.db"))


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "offsets.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OffsetStoreError, match="file is not a database"):
        open_store(SqliteOffsetsConfig(path=path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_directory(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir(mode=0o555)
    with pytest.raises(OffsetStoreError, match=str(directory / "offsets.db")):
        open_store(SqliteOffsetsConfig(path=directory / "offsets.db"))


# -- the feed's identity ------------------------------------------------------------------

PRINT = Fingerprint(42, "2024-05-10T16:12:03.1234567+00:00", "1.2.3.4.5")


async def test_a_cursor_keeps_the_fingerprint_of_its_entry(store: OffsetStore) -> None:
    await store.commit(FEED, "a", "42", 42, PRINT)
    await store.commit(FEED, "b", "7", 7)
    stored = {row.sink: row.fingerprint for row in await store.list(FEED)}
    assert stored == {"a": PRINT, "b": None}


def _legacy_store(path: Path, rows: list[tuple[str, str, int]]) -> None:
    """A store as versions without fingerprints wrote it."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE offsets (feed TEXT NOT NULL, sink TEXT NOT NULL, position TEXT NOT "
            "NULL, sequence INTEGER, updated_at TEXT NOT NULL, PRIMARY KEY (feed, sink)) "
            "WITHOUT ROWID"
        )
        db.executemany(
            "INSERT INTO offsets VALUES (?, ?, ?, ?, '2024-05-10T00:00:00+00:00')",
            [(feed, sink, str(sequence), sequence) for feed, sink, sequence in rows],
        )


async def test_a_store_of_an_older_version_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "offsets.db"
    _legacy_store(path, [(FEED, "a", 10)])
    store = open_store(SqliteOffsetsConfig(path=path))
    try:
        stored = await store.load(FEED, "a")
        assert stored is not None and (stored.sequence, stored.fingerprint) == (10, None)
        await store.commit(FEED, "a", "42", 42, PRINT)
        assert (await store.load(FEED, "a")).fingerprint == PRINT
    finally:
        await store.close()


def test_a_store_written_by_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "offsets.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 99")
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(OffsetStoreError, match=r"newer dicom-bridge \(schema 99"):
        open_store(SqliteOffsetsConfig(path=path))


# -- state that vanishes ------------------------------------------------------------------


def test_an_empty_file_is_refused_not_taken_as_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "offsets.db"
    path.write_bytes(b"")
    with pytest.raises(OffsetStoreError, match=r"offsets\.db: the file is empty \(0 bytes\)"):
        open_store(SqliteOffsetsConfig(path=path))
    assert path.read_bytes() == b""


async def test_a_new_store_is_never_seen_half_made(tmp_path: Path) -> None:
    store = open_store(SqliteOffsetsConfig(path=tmp_path / "offsets.db"))
    await store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["offsets.db"]
    assert (tmp_path / "offsets.db").stat().st_size > 0


@pytest.mark.parametrize("change", ["removed", "replaced"])
async def test_a_store_file_removed_or_replaced_under_the_store_fails_the_next_write(
    tmp_path: Path, change: str
) -> None:
    state = tmp_path / "state"
    store = open_store(SqliteOffsetsConfig(path=state / "offsets.db"))
    try:
        await store.commit(FEED, "a", "1", 1)
        shutil.rmtree(state)
        if change == "replaced":  # e.g. a backup restored over the running bridge's state
            await open_store(SqliteOffsetsConfig(path=state / "offsets.db")).close()
        with pytest.raises(OffsetStoreError, match=f"the file was {change}") as caught:
            await store.commit(FEED, "a", "2", 2)
        assert "\n" not in str(caught.value)
        with pytest.raises(OffsetStoreError, match=f"the file was {change}"):
            await store.check()
    finally:
        await store.close()
