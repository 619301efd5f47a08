"""`dicom-bridge dlq show|redrive`: inspect dead-lettered events and send them again.

Works with file dead-letter targets (JSON Lines, rotated parts included). `redrive` rebuilds
each event from the entry it carries (so it is formatted as the route formats it today; a
poison entry from the bytes the feed served, kept exactly), sends it with the route's sink,
and removes from the file only what the sink acknowledged: the remaining records are written
to a new file that replaces the old one atomically. Records of entries that still cannot be
parsed stay where they are.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bridge.config import BridgeConfig
from bridge.core.backoff import Backoff
from bridge.core.entry import Entry, parse_entry, parse_served
from bridge.core.event import Event
from bridge.delivery.format import Formatter
from bridge.delivery.sender import RouteStats, Sender
from sinks import SinkConfig, create_sink
from sinks.file.config import Config as FileSinkConfig


@dataclass
class Record:
    part: Path
    line: bytes
    value: dict[str, Any] | None  # None: a line that is not JSON (cut by a crash)

    @property
    def entry(self) -> dict[str, Any] | None:
        """The feed entry the record carries: its own (a poison record, an Event Grid
        event's), else a structured event's data or a raw event."""
        if self.value is None:
            return None
        entry = self.value.get("entry")
        if isinstance(entry, dict):
            return entry
        event = self.value.get("event")
        if isinstance(event, dict):
            return event.get("data") if "specversion" in event else event
        return None

    def feed_entry(self) -> Entry | None:
        """`entry` parsed; a poison record's from the element's bytes as the feed served
        them (the record's last member, as the bridge writes it)."""
        value, raw = self.value, self.entry
        if value is None or raw is None:
            return None
        start = self.line.rfind(_POISON_MEMBER)
        if "event" not in value and start > 0 and self.line.endswith(b"}"):
            served = self.line[start + len(_POISON_MEMBER) : -1]
            try:
                if orjson.loads(served) == raw:
                    return parse_served(served)
            except orjson.JSONDecodeError:
                pass
        return parse_entry(raw)


_POISON_MEMBER = b',"entry":'


def dead_letter_path(config: BridgeConfig, sink: str) -> Path:
    sink_config = config.route(sink)
    target = sink_config.dead_letter
    if not isinstance(target, FileSinkConfig):
        raise ValueError(
            f"sink {sink} has no file dead_letter target: dlq commands read "
            "JSON Lines dead-letter files"
        )
    return Path(target.path)


def read_records(path: Path) -> list[Record]:
    """Every record of the dead-letter file and its rotated parts, oldest part first."""
    parts = sorted(path.parent.glob(f"{path.stem}.*{path.suffix}"), key=_part_number)
    records = []
    for part in [*parts, path]:
        if not part.exists():
            continue
        for line in part.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                value = None
            records.append(Record(part, line, value if isinstance(value, dict) else None))
    return records


@dataclass
class RedriveResult:
    delivered: int
    remaining: int
    unreadable: int
    deadline_passed: bool = False
    untried: int = 0  # records not sent before the deadline passed


async def redrive(config: BridgeConfig, sink: str, deadline: float = 600.0) -> RedriveResult:
    """Send the dead-lettered events again, at the speed of a route: batches of
    `batch_size`, up to `max_in_flight` at once (one study never in two batches at once),
    retried by the route's policy; stops starting sends once `deadline` seconds passed."""
    path = dead_letter_path(config, sink)
    records = read_records(path)
    sink_config = config.route(sink)
    formatter = Formatter(config.feed.url, sink_config.format, config.feed.key)
    pending: list[tuple[Record, Event]] = []
    for record in records:
        entry = record.feed_entry()
        if entry is not None and not entry.poison:
            pending.append((record, formatter.event(entry)))
    unreadable = len(records) - len(pending)
    delivered, untried, passed = await _send(sink_config, pending, deadline)
    kept = [record for record in records if id(record) not in delivered]
    _rewrite(path, records, kept)
    # Passed and it mattered: sends not started, or retries cut short by it.
    passed = passed and len(kept) > unreadable
    return RedriveResult(len(delivered), len(kept), unreadable, passed, untried)


async def _send(
    sink_config: SinkConfig, pending: list[tuple[Record, Event]], deadline: float
) -> tuple[set[int], int, bool]:
    """Send in lanes (by study, so a study's events keep their order), each in batches with
    the route's retry policy (a `Sender`), until every event is delivered or permanently
    refused, or `deadline` passes (checked between sends: a send under way is never cut);
    returns the ids of the records delivered, how many were never tried and whether the
    deadline passed."""
    refused: set[int] = set()  # their records stay in the file
    delivered: set[int] = set()
    untried = 0

    async def keep(event: Event, reason: str) -> None:
        refused.add(id(event))

    sink = create_sink(sink_config)
    backoff = Backoff(sink_config.retry.initial, sink_config.retry.max)
    log = logging.LoggerAdapter(logging.getLogger("bridge.dlq"), {"sink": sink_config.name})
    ends = time.monotonic() + deadline
    lanes: list[list[tuple[Record, Event]]] = [[] for _ in range(sink_config.max_in_flight)]
    for item in pending:
        lanes[zlib.crc32(item[1].key.encode()) % len(lanes)].append(item)

    async def drive(lane: list[tuple[Record, Event]]) -> None:
        nonlocal untried
        for start in range(0, len(lane), sink_config.batch_size):
            remaining = ends - time.monotonic()
            if remaining <= 0:
                untried += len(lane) - start
                return
            batch = lane[start : start + sink_config.batch_size]
            sender = Sender(
                sink,
                backoff=backoff,
                max_elapsed=remaining,
                give_up=keep,
                stats=RouteStats(),
                log=log,
            )
            await sender.deliver(
                [event for _, event in batch], functools.partial(_note, delivered, refused, batch)
            )

    await sink.open()
    try:
        await asyncio.gather(*(drive(lane) for lane in lanes if lane))
    finally:
        await sink.close()
    return delivered, untried, time.monotonic() >= ends


def _note(
    delivered: set[int], refused: set[int], batch: list[tuple[Record, Event]], index: int
) -> None:
    """The event at `index` of `batch` handled: delivered unless refused (given up on)."""
    record, event = batch[index]
    if id(event) not in refused:
        delivered.add(id(record))


def _rewrite(path: Path, records: list[Record], kept: list[Record]) -> None:
    """Replace the dead-letter file by the kept records (temp file, fsync, rename), then
    remove the rotated parts: a crash in between leaves duplicates, never a loss."""
    if len(kept) == len(records):
        return
    temporary = path.with_name(path.name + ".redrive")
    with open(temporary, "wb") as out:
        out.write(b"".join(record.line + b"\n" for record in kept))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    for part in {record.part for record in records} - {path}:
        part.unlink(missing_ok=True)


def _part_number(part: Path) -> int:
    """`dlq.3.jsonl` → 3."""
    tail = part.stem.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0
