"""Time as .NET ticks: integers of 100 ns since 0001-01-01T00:00:00 UTC.

The feed's timestamps are SQL `DATETIMEOFFSET(7)` values, so the simulator keeps every
timestamp as an integer at that resolution: no float rounding, no loss to Python's
microseconds. The .NET epoch (rather than the Unix one) makes `DateTimeOffset.MinValue` and
`MaxValue`, the v2 window defaults, plain integers.

This is deliberately independent of the bridge's own timestamp helpers: the simulator is the
oracle the bridge's client is tested against and must not share its code.
"""

from __future__ import annotations

import time
from datetime import date
from functools import lru_cache

TICKS_PER_SECOND = 10_000_000
TICKS_PER_MILLISECOND = 10_000
TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
MIN_TICKS = 0  # DateTimeOffset.MinValue
MAX_TICKS = date(9999, 12, 31).toordinal() * TICKS_PER_DAY - 1  # DateTimeOffset.MaxValue
UNIX_EPOCH_TICKS = (date(1970, 1, 1).toordinal() - 1) * TICKS_PER_DAY


def now_ticks() -> int:
    """The real UTC clock, as live operations on the real service would stamp rows."""
    return UNIX_EPOCH_TICKS + time.time_ns() // 100


def from_parts(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> int:
    """Ticks of a calendar moment; raises ValueError for an impossible date."""
    days = date(year, month, day).toordinal() - 1
    return (days * 86_400 + hour * 3600 + minute * 60 + second) * TICKS_PER_SECOND


def _split(ticks: int) -> tuple[date, int, int, int, int]:
    days, rest = divmod(ticks, TICKS_PER_DAY)
    seconds, fraction = divmod(rest, TICKS_PER_SECOND)
    hour, seconds = divmod(seconds, 3600)
    minute, second = divmod(seconds, 60)
    return date.fromordinal(days + 1), hour, minute, second, fraction


_TWO_DIGITS = [f"{n:02d}" for n in range(100)]


@lru_cache(maxsize=4096)
def _iso_day(days: int) -> str:
    day = date.fromordinal(days + 1)
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}T"


def format_timestamp(ticks: int) -> str:
    """System.Text.Json's DateTimeOffset form for a UTC value.

    `2024-05-10T16:12:03.1234567+00:00`: up to 7 fractional digits with trailing zeros
    trimmed, no fraction at all when it is zero, and `+00:00` rather than `Z`. On the
    rendering path of every entry, hence the cached date part and the digit table.
    """
    days, rest = divmod(ticks, TICKS_PER_DAY)
    seconds, fraction = divmod(rest, TICKS_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    two = _TWO_DIGITS
    clock = _iso_day(days) + two[hour] + ":" + two[minute] + ":" + two[second]
    if fraction:  # seven digits, zero-padded by the leading 1, then trimmed
        return clock + "." + str(TICKS_PER_SECOND + fraction)[1:].rstrip("0") + "+00:00"
    return clock + "+00:00"


def format_invariant(ticks: int) -> str:
    """`DateTimeOffset.ToString()` under the invariant culture, as error messages print it."""
    day, hour, minute, second, _ = _split(ticks)
    return (
        f"{day.month:02d}/{day.day:02d}/{day.year:04d} {hour:02d}:{minute:02d}:{second:02d} +00:00"
    )


def dicom_date_time(ticks: int) -> tuple[str, str]:
    """DICOM DA and TM values (`YYYYMMDD`, `HHMMSS`) of a moment."""
    day, hour, minute, second, _ = _split(ticks)
    return f"{day.year:04d}{day.month:02d}{day.day:02d}", f"{hour:02d}{minute:02d}{second:02d}"
