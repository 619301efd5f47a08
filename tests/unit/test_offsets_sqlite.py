"""The embedded sqlite offset store."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.config import SqliteOffsetsConfig
from bridge.offsets import OffsetStore, OffsetStoreError, StoredOffset, open_store

FEED = "https://h.example"


@pytest.fixture
async def store(tmp_path: Path):
    opened = open_store(SqliteOffsetsConfig(path=tmp_path / "state" / "offsets.db"))
    yield opened
    await opened.close()


async def test_commit_is_an_upsert(store: OffsetStore) -> None:
    assert await store.load(FEED, "archive") is None
    before = datetime.now(UTC)
    await store.commit(FEED, "archive", "10", 10)
    await store.commit(FEED, "archive", "25", 25)
    stored = await store.load(FEED, "archive")
    assert isinstance(stored, StoredOffset)
    assert (stored.feed, stored.sink, stored.position, stored.sequence) == (
        FEED,
        "archive",
        "25",
        25,
    )
    assert before <= stored.updated_at <= datetime.now(UTC)


async def test_position_is_opaque_and_sequence_optional(store: OffsetStore) -> None:
    position = '{"window":"2024-05-10T16:12:03.1234567+00:00","after":7}'
    await store.commit(FEED, "events", position, None)
    stored = await store.load(FEED, "events")
    assert stored is not None
    assert (stored.position, stored.sequence) == (position, None)


async def test_list_and_delete(store: OffsetStore) -> None:
    await store.commit(FEED, "b", "2", 2)
    await store.commit(FEED, "a", "1", 1)
    await store.commit("https://other", "a", "9", 9)
    assert [(o.feed, o.sink) for o in await store.list()] == [
        (FEED, "a"),
        (FEED, "b"),
        ("https://other", "a"),
    ]
    assert [o.sink for o in await store.list(FEED)] == ["a", "b"]
    assert await store.delete(FEED, "a") is True
    assert await store.delete(FEED, "a") is False
    assert await store.load(FEED, "a") is None
    assert await store.load("https://other", "a") is not None


async def test_concurrent_commits_land_in_call_order(store: OffsetStore) -> None:
    await asyncio.gather(*(store.commit(FEED, "a", str(n), n) for n in range(1, 51)))
    stored = await store.load(FEED, "a")
    assert stored is not None and stored.sequence == 50


async def test_reopen_keeps_cursors(tmp_path: Path) -> None:
    config = SqliteOffsetsConfig(path=tmp_path / "offsets.db")
    first = open_store(config)
    await first.commit(FEED, "archive", "42", 42)
    await first.close()
    second = open_store(config)
    try:
        stored = await second.load(FEED, "archive")
        assert stored is not None and stored.position == "42"
    finally:
        await second.close()


async def test_durability_settings(store: OffsetStore, tmp_path: Path) -> None:
    await store.commit(FEED, "a", "1", 1)
    db = sqlite3.connect(tmp_path / "state" / "offsets.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


async def test_check_reports_writable(store: OffsetStore) -> None:
    await store.commit(FEED, "a", "1", 1)
    assert (await store.check()).endswith("writable, 1 cursor(s)")


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
