"""Encoding shared by the sinks that write JSON Lines (file, stdout)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.core.event import Event


def json_lines(events: Sequence[Event]) -> bytes:
    """The events' bodies, one per line."""
    return b"".join([event.body + b"\n" for event in events])
