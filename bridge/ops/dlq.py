"""`dicom-bridge dlq show|redrive`: inspect dead-lettered events and send them again.

Works with file dead-letter targets (JSON Lines, rotated parts included). `redrive` rebuilds
each event from the entry it carries (so it is formatted as the route formats it today; a
poison entry from the bytes the feed served, kept exactly), sends it with the route's sink,
and removes from the file only what the sink acknowledged: the remaining records are written
to a new file that replaces the old one atomically. Records of entries that still cannot be
parsed stay where they are.
"""

from __future__ import annotations

import logging
import os
import time
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


async def redrive(config: BridgeConfig, sink: str, timeout: float = 60.0) -> RedriveResult:
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
    delivered = await _send(sink_config, pending, timeout)
    kept = [record for record in records if id(record) not in delivered]
    _rewrite(path, records, kept)
    return RedriveResult(len(delivered), len(kept), unreadable)


async def _send(
    sink_config: SinkConfig, pending: list[tuple[Record, Event]], timeout: float
) -> set[int]:
    """Send in batches with the route's retry policy (a `Sender`) until every event is
    delivered or permanently refused, or `timeout` passes (checked between sends: a send
    under way is never cut); returns the ids of the records delivered."""
    handled: set[int] = set()
    refused: set[int] = set()  # their records stay in the file

    async def keep(event: Event, reason: str) -> None:
        refused.add(id(event))

    sink = create_sink(sink_config)
    backoff = Backoff(sink_config.retry.initial, sink_config.retry.max)
    log = logging.LoggerAdapter(logging.getLogger("bridge.dlq"), {"sink": sink_config.name})
    deadline = time.monotonic() + timeout
    await sink.open()
    try:
        for start in range(0, len(pending), sink_config.batch_size):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch = pending[start : start + sink_config.batch_size]
            events = [event for _, event in batch]
            sender = Sender(
                sink,
                backoff=backoff,
                max_elapsed=remaining,
                give_up=keep,
                stats=RouteStats(),
                log=log,
            )
            delivered: set[int] = set()  # indexes in `batch`
            await sender.deliver(events, delivered.add)
            handled.update(start + index for index in delivered)
    finally:
        await sink.close()
    return {id(pending[index][0]) for index in handled if id(pending[index][1]) not in refused}


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
