"""What each sink holds after a scenario, every copy attributed to the bridge incarnation
that sent it.

The attribution uses what each peer records: the file sink's line position (the harness
counts the lines whenever an incarnation ends), Kafka record timestamps (wall clock, set by
the producer), the AMQP peer's enqueue times and the webhook receiver's arrival times (both
`time.monotonic()`, one clock for every process of the machine). A copy belongs to the last
incarnation started before it was written.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from tests.e2e.helpers import read_events, rotated_parts

if TYPE_CHECKING:
    from tests.chaos.harness import Incarnation
    from tests.peers.kafka_records import Record
    from tests.peers.webhook_receiver import Request


@dataclass
class Delivered:
    """One sink's copies, in arrival order: (sequence, incarnation number)."""

    copies: list[tuple[int, int]] = field(default_factory=list)
    dead_lettered: set[int] = field(default_factory=set)
    broken: int = 0  # file lines cut short by a SIGKILL


def file_lines(path: Path) -> int:
    """Lines in a file sink's files (a last line without its newline counts too)."""
    total = 0
    for part in rotated_parts(path):
        data = part.read_bytes()
        total += data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))
    return total


def collect(
    incarnations: list[Incarnation],
    *,
    file: Path,
    kafka: list[Record],
    servicebus: list[tuple[str | None, float]],
    webhook: list[Request],
    dead_letters: Path,
) -> dict[str, Delivered]:
    last = max(len(incarnations) - 1, 0)
    starts = [i.started for i in incarnations]
    starts_ms = [i.started_wall * 1000 for i in incarnations]

    def by_time(moment: float, clock: list[float]) -> int:
        return min(max(bisect_right(clock, moment) - 1, 0), last)

    found = {
        "file": _file(file, [i.file_lines for i in incarnations if i.how], last),
        "kafka": Delivered(
            [(_sequence(r.value), by_time(r.timestamp or 0, starts_ms)) for r in kafka]
        ),
        "servicebus": Delivered(
            [(int(str(mid).rsplit("/", 1)[1]), by_time(at, starts)) for mid, at in servicebus]
        ),
        "webhook": Delivered(
            [(s, by_time(r.arrived, starts)) for r in webhook for s in r.sequences]
        ),
    }
    for sink, delivered in found.items():
        records, _ = read_events(dead_letters / f"{sink}.jsonl")
        delivered.dead_lettered = {record["sequence"] for record in records}
    return found


def _file(path: Path, marks: list[int], last: int) -> Delivered:
    delivered = Delivered()
    number = 0
    for part in rotated_parts(path):
        for line in part.read_bytes().splitlines():
            incarnation = min(bisect_right(marks, number), last)
            number += 1
            try:
                delivered.copies.append((_sequence(line), incarnation))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                delivered.broken += 1
    return delivered


def _sequence(value: bytes | None) -> int:
    document = orjson.loads(value or b"")
    return document["data"]["sequence"]
