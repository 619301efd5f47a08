"""`offsets export` / `offsets import`: cursors moved from SQLite into PostgreSQL whole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from bridge.cli.main import main as cli
from bridge.config import PostgresOffsetsConfig, SqliteOffsetsConfig
from bridge.offsets import Fingerprint, open_store
from tests.peers import postgres


def _config(path: Path, offsets: dict) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "feed": {"url": "http://127.0.0.1:1", "name": "hospital"},
                "offsets": offsets,
                "sinks": [{"name": "archive", "type": "file", "path": "out.jsonl"}],
            }
        )
    )
    return path


@pytest.fixture
def database():
    with postgres.temporary_database() as name:
        yield name


def test_sqlite_to_postgres(tmp_path: Path, database: str, capsys) -> None:
    asyncio.run(_sqlite_to_postgres(tmp_path, database, capsys))


async def _sqlite_to_postgres(tmp_path: Path, database: str, capsys) -> None:
    """(The CLI runs its own event loop: called from a thread of this one.)"""
    sqlite = SqliteOffsetsConfig(path=tmp_path / "offsets.db")
    fingerprint = Fingerprint(41, "2024-05-10T16:12:03.1234567+00:00", "1.2.3.41")
    source = open_store(sqlite)
    await source.commit("hospital", "archive", "41", 41, fingerprint)
    await source.commit("hospital", "webhook", '{"window":1,"after":7}', None)
    before = await source.list()
    await source.close()

    async def main(argv: list[str]) -> int:
        return await asyncio.get_running_loop().run_in_executor(None, cli, argv)

    exported = tmp_path / "cursors.json"
    small = _config(tmp_path / "sqlite.yaml", {"type": "sqlite", "path": str(sqlite.path)})
    assert await main(["offsets", "export", "--config", str(small), "-o", str(exported)]) == 0
    document = json.loads(exported.read_text())
    assert document["format"] == "dicom-bridge-offsets"
    assert [c["sink"] for c in document["cursors"]] == ["archive", "webhook"]

    dsn = postgres.dsn(database)
    big = _config(tmp_path / "pg.yaml", {"type": "postgres", "dsn": dsn})
    assert await main(["offsets", "import", "--config", str(big), "-i", str(exported)]) == 0
    assert "imported 2 cursor(s) into postgres" in capsys.readouterr().out
    target = open_store(PostgresOffsetsConfig(type="postgres", dsn=dsn))
    try:
        after = await target.list()
        assert [(r.feed, r.sink, r.position, r.sequence, r.fingerprint) for r in after] == [
            (r.feed, r.sink, r.position, r.sequence, r.fingerprint) for r in before
        ]
        # Another position in the target: refused, unless --overwrite.
        await target.commit("hospital", "archive", "50", 50)
        argv = ["offsets", "import", "--config", str(big), "-i", str(exported)]
        assert await main(argv) == 1
        assert "hospital/archive: nothing imported (--overwrite" in capsys.readouterr().err
        assert (await target.load("hospital", "archive")).sequence == 50
        assert await main([*argv, "--overwrite"]) == 0
        assert (await target.load("hospital", "archive")).sequence == 41
    finally:
        await target.close()


def test_an_export_of_something_else_is_refused(tmp_path: Path, capsys) -> None:
    config = _config(tmp_path / "c.yaml", {"type": "sqlite", "path": str(tmp_path / "o.db")})
    bad = tmp_path / "bad.json"
    bad.write_text('{"cursors": []}')
    assert cli(["offsets", "import", "--config", str(config), "-i", str(bad)]) == 1
    assert "not an export of dicom-bridge offsets" in capsys.readouterr().err
    bad.write_text('{"format": "dicom-bridge-offsets", "version": 1, "cursors": [{"feed": "f"}]}')
    assert cli(["offsets", "import", "--config", str(config), "-i", str(bad)]) == 1
    assert "cursors[0]: invalid cursor" in capsys.readouterr().err
