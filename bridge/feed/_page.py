"""What readers yield: a page of entries plus the cursor position after it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.core.entry import Entry


@dataclass(slots=True)
class Page:
    """`entries` in feed order (each with its `position` set), `position`: the cursor value
    once every entry of this page was handled (past a gap, it is beyond the last entry),
    `caught_up`: nothing newer was visible when the page was read, `latest`: the feed's
    latest sequence as last seen (0 on an empty feed), for lag reporting."""

    entries: list[Entry]
    position: Any
    caught_up: bool
    latest: int
