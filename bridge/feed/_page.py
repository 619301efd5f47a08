"""What readers yield: a page of entries plus the cursor position after it; and what a
route reads through (`Reader`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

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


class Reader(Protocol):
    """An endless stream of pages from a cursor position, and that position's form in the
    offset store. Positions are opaque to routes (v1: a sequence, `SequenceReader`; v2: a
    `TimePosition`, `TimeWindowReader`); they only compare them."""

    @property
    def initial(self) -> Any:
        """The position before the feed's first entry."""
        ...

    def encode(self, position: Any) -> tuple[str, int | None]:
        """The stored text of `position`, and the sequence it stands at (for people)."""
        ...

    def decode(self, text: str) -> Any:
        """The position stored as `text`; ValueError, KeyError or TypeError if it is not
        one of this reader's."""
        ...

    def pages(self, position: Any) -> AsyncIterator[Page]:
        """The pages after `position`, for ever (caught-up pages while nothing is new)."""
        ...
