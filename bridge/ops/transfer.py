"""`dicom-bridge offsets export|import`: every cursor of a store as JSON, and back into
another store (SQLite to PostgreSQL when a single host grows into replicas).

The document keeps each cursor whole (feed, sink, position, sequence, fingerprint, when it
was written), so the routes resume in the new store exactly where they were, and the
fingerprint checks still tell a reset feed. Import refuses to overwrite a cursor the target
holds at another position unless asked to; stop the bridge (every replica) first.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bridge.config import BridgeConfig
from bridge.offsets import Fingerprint, StoredOffset, open_store

FORMAT = "dicom-bridge-offsets"
VERSION = 1


async def export_offsets(config: BridgeConfig) -> dict[str, Any]:
    store = open_store(config.offsets)
    try:
        rows = await store.list()
    finally:
        await store.close()
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "cursors": [_row(row) for row in rows],
    }


def _row(row: StoredOffset) -> dict[str, Any]:
    return {
        "feed": row.feed,
        "sink": row.sink,
        "position": row.position,
        "sequence": row.sequence,
        "updated_at": row.updated_at.isoformat(),
        "fingerprint": asdict(row.fingerprint) if row.fingerprint else None,
    }


def parse_export(document: Any) -> list[StoredOffset]:
    """The cursors of an export; ValueError (one line) for anything else."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f'not an export of dicom-bridge offsets (no "format": "{FORMAT}")')
    if document.get("version") != VERSION:
        raise ValueError(
            f"export version {document.get('version')!r}: this version reads {VERSION}"
        )
    cursors = document.get("cursors")
    if not isinstance(cursors, list):
        raise ValueError('"cursors" must be a list')
    rows = []
    for index, item in enumerate(cursors):
        try:
            fingerprint = item.get("fingerprint")
            rows.append(
                StoredOffset(
                    _text(item["feed"]),
                    _text(item["sink"]),
                    _text(item["position"]),
                    _sequence(item.get("sequence")),
                    datetime.fromisoformat(item["updated_at"]),
                    Fingerprint(
                        int(fingerprint["sequence"]),
                        _text(fingerprint["timestamp"]),
                        _text(fingerprint["sop"]),
                    )
                    if fingerprint
                    else None,
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"cursors[{index}]: invalid cursor ({type(exc).__name__}: {exc})"
            ) from None
    return rows


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def _sequence(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise ValueError("sequence must be a whole number >= 0 or null")


async def import_offsets(config: BridgeConfig, rows: list[StoredOffset], *, overwrite: bool) -> str:
    """Write `rows` into the configured store; refuses (before writing any) cursors the
    store holds at another position unless `overwrite`."""
    store = open_store(config.offsets)
    try:
        held = {(row.feed, row.sink): row for row in await store.list()}
        conflicts = [
            f"{row.feed}/{row.sink}"
            for row in rows
            if (row.feed, row.sink) in held and held[(row.feed, row.sink)].position != row.position
        ]
        if conflicts and not overwrite:
            raise ValueError(
                f"the store holds other cursors for {', '.join(conflicts)}: nothing imported "
                "(--overwrite replaces them)"
            )
        for row in rows:
            await store.commit(row.feed, row.sink, row.position, row.sequence, row.fingerprint)
    finally:
        await store.close()
    return f"imported {len(rows)} cursor(s) into {config.offsets.type}"
