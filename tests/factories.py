"""Change-feed entries and formatted events for tests: one definition of a valid entry.

Entry `n` belongs to study `1.2.<n % studies>`, series `<study>.1`, instance
`<series>.<n>`; any field can be overridden (`action="Delete"`, `study="a"`, `pad="xx"`).
"""

from __future__ import annotations

from typing import Any

from bridge.core.entry import Entry, parse_entry
from bridge.core.event import Event
from bridge.delivery.format import Formatter

SOURCE = "https://dicom.example"
TIMESTAMP = "2024-05-10T16:12:03.1234567+00:00"


def entry_json(sequence: int, *, studies: int = 5, study: str | None = None, **fields: Any) -> dict:
    """The entry as the server writes it."""
    study = study or f"1.2.{sequence % studies}"
    return {
        "sequence": sequence,
        "partitionName": "Microsoft.Default",
        "studyInstanceUid": study,
        "seriesInstanceUid": f"{study}.1",
        "sopInstanceUid": f"{study}.1.{sequence}",
        "action": "Create",
        "timestamp": TIMESTAMP,
        "state": "Current",
        **fields,
    }


def entry(sequence: int, **options: Any) -> Entry:
    """The parsed entry, positioned as the v1 reader positions it (cursor = sequence)."""
    parsed = parse_entry(entry_json(sequence, **options))
    parsed.position = sequence
    return parsed


def events(
    count: int,
    *,
    first: int = 1,
    fmt: str = "cloudevents",
    source: str = SOURCE,
    pad: int = 0,
    **options: Any,
) -> list[Event]:
    """`count` formatted events of consecutive sequences from `first`; `pad` adds a field of
    that many bytes to each entry."""
    formatter = Formatter(source, fmt)  # type: ignore[arg-type]
    extra = {"pad": "x" * pad} if pad else {}
    return [formatter.event(entry(n, **extra, **options)) for n in range(first, first + count)]
