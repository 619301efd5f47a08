"""Feed timestamps at the server's 100-ns resolution.

The server writes DateTimeOffset with up to 7 fractional digits (`...03.1234567+00:00`) and
the docs show `Z`; Python's datetime keeps only microseconds, which would merge distinct v2
positions. Timestamps are therefore compared as integer ticks of 100 ns since the epoch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

TICKS_PER_SECOND = 10_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ticks(text: str) -> int:
    """Parse an ISO-8601 timestamp with an explicit zone into 100-ns ticks since the epoch."""
    head, frac, rest = _split_fraction(text)
    moment = datetime.fromisoformat(head + rest)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    delta = moment - _EPOCH
    ticks = (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND
    return ticks + int(frac.ljust(7, "0")[:7]) if frac else ticks


def from_ticks(ticks: int) -> str:
    """Format ticks as the server does: UTC, `+00:00`, up to 7 digits, trailing zeros trimmed."""
    seconds, remainder = divmod(ticks, TICKS_PER_SECOND)
    moment = _EPOCH + timedelta(seconds=seconds)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if remainder:
        text += "." + f"{remainder:07d}".rstrip("0")
    return text + "+00:00"


def now_ticks() -> int:
    delta = datetime.now(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


def _split_fraction(text: str) -> tuple[str, str, str]:
    """Split `2024-05-10T16:12:03.1234567+00:00` into head, `1234567` and `+00:00`."""
    dot = text.find(".", 10)
    if dot < 0:
        return text, "", ""
    end = dot + 1
    while end < len(text) and text[end].isdigit():
        end += 1
    if end == dot + 1:
        raise ValueError(f"invalid timestamp: {text!r}")
    return text[:dot], text[dot + 1 : end], text[end:]
