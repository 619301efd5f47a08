"""The JSON Lines file sink against real files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import pytest

from bridge.core.sink import DELIVERED, SinkError, Transient
from bridge.delivery.format import Formatter
from sinks import create_sink
from sinks.file.config import Config
from tests.factories import events

FORMATTER = Formatter("https://h.example")


def sequences(path: Path) -> list[int]:
    return [json.loads(line)["data"]["sequence"] for line in path.read_text().splitlines()]


async def open_sink(path: Path, **options):
    sink = create_sink(Config(name="archive", type="file", path=path, **options))
    await sink.open()
    return sink


async def test_partial_last_line_is_terminated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(events(1)[0].body + b"\n" + b'{"specversion":"1.0","id":"trunc')
    sink = await open_sink(path)
    try:
        await sink.send(events(1, first=2))
    finally:
        await sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert lines[1] == '{"specversion":"1.0","id":"trunc'
    assert json.loads(lines[2])["data"]["sequence"] == 2


async def test_rotation_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    (tmp_path / "events.1.jsonl").write_text("kept\n")  # from an earlier run
    size = len(events(1)[0].body) + 1
    sink = await open_sink(path, rotate_bytes=2 * size + 1)
    try:
        for sequence in range(1, 8):
            await sink.send(events(1, first=sequence))
    finally:
        await sink.close()
    assert (tmp_path / "events.1.jsonl").read_text() == "kept\n"
    assert sequences(tmp_path / "events.2.jsonl") == [1, 2]
    assert sequences(tmp_path / "events.3.jsonl") == [3, 4]
    assert sequences(tmp_path / "events.4.jsonl") == [5, 6]
    assert sequences(path) == [7]


async def test_unwritable_path_is_transient_and_retried_at_next_send(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the directory should be")
    sink = await open_sink(blocker / "events.jsonl")
    try:
        outcomes = await sink.send(events(2))
        assert len(outcomes) == 2
        assert all(isinstance(outcome, Transient) for outcome in outcomes)
        assert str(blocker) in outcomes[0].reason
        with pytest.raises(SinkError, match="not writable"):
            await sink.check()

        blocker.unlink()  # the operator fixes it
        assert await sink.send(events(2)) == [DELIVERED] * 2
        assert (await sink.check()).endswith("writable")
    finally:
        await sink.close()
    assert sequences(blocker / "events.jsonl") == [1, 2]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_read_only_directory_is_transient(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir(mode=0o555)
    sink = await open_sink(directory / "events.jsonl")
    try:
        (outcome,) = await sink.send(events(1))
        assert isinstance(outcome, Transient)
        assert "(EACCES)" in outcome.reason
    finally:
        await sink.close()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_full_disk_is_transient_not_dead_lettered() -> None:
    sink = await open_sink(Path("/dev/full"), fsync=False)
    try:
        outcomes = await sink.send(events(2))
        assert outcomes == [Transient(outcomes[0].reason)] * 2
        assert outcomes[0].reason == "/dev/full: No space left on device (ENOSPC)"
    finally:
        await sink.close()


async def test_concurrent_sends_keep_call_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = await open_sink(path)
    try:
        results = await asyncio.gather(*(sink.send(events(10, first=n * 10)) for n in range(20)))
    finally:
        await sink.close()
    assert all(result == [DELIVERED] * 10 for result in results)
    assert sequences(path) == list(range(0, 200))


async def test_cancelled_send_does_not_overlap_the_next(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = await open_sink(path)
    try:
        first = asyncio.create_task(sink.send(events(500)))
        await asyncio.sleep(0)
        first.cancel()
        await sink.send(events(10, first=501))
        await asyncio.gather(first, return_exceptions=True)
    finally:
        await sink.close()
    got = sequences(path)  # every line whole; the cancelled batch may or may not be there
    assert got[-10:] == list(range(501, 511))
    assert got[:-10] in ([], list(range(1, 501)))


def open_paths() -> set[str]:
    """What this process's file descriptors point at."""
    paths = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            paths.add(os.readlink(f"/proc/self/fd/{fd}"))
    return paths


@pytest.mark.parametrize("create", [False, True], ids=["renamed", "renamed-then-created"])
async def test_a_file_renamed_externally_is_never_written_again(tmp_path: Path, create) -> None:
    """logrotate without copytruncate: rename, optionally create an empty file in its place."""
    path = tmp_path / "events.jsonl"
    rotated = tmp_path / "events.jsonl.1"
    sink = await open_sink(path)
    try:
        assert await sink.send(events(2)) == [DELIVERED] * 2
        path.rename(rotated)
        if create:
            path.touch()
        assert await sink.send(events(2, first=3)) == [DELIVERED] * 2
        assert await sink.send(events(1, first=5)) == [DELIVERED]
    finally:
        await sink.close()
    assert sequences(rotated) == [1, 2]
    assert sequences(path) == [3, 4, 5]


async def test_a_file_removed_externally_is_created_again(tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"
    sink = await open_sink(path)
    try:
        await sink.send(events(2))
        path.unlink()
        assert await sink.send(events(1, first=3)) == [DELIVERED]
    finally:
        await sink.close()
    assert sequences(path) == [3]


async def test_reopen_releases_the_renamed_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    rotated = tmp_path / "events.jsonl.1"
    sink = await open_sink(path)
    try:
        await sink.send(events(1))
        path.rename(rotated)
        assert str(rotated) in open_paths()
        await sink.reopen()  # what SIGHUP does: the rotated file can be compressed now
        assert str(rotated) not in open_paths()
        await sink.send(events(1, first=2))
    finally:
        await sink.close()
    assert sequences(rotated) == [1]
    assert sequences(path) == [2]
