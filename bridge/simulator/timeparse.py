"""The v2 `startTime`/`endTime` binder: `DateTime.Parse(InvariantCulture)` plus a zone check.

The server's `MandatoryTimeZoneBinder` parses with `DateTime.Parse`; a value without a zone
(Kind Unspecified) is refused with "Date and time value must specify a time zone.", and a
value `DateTime.Parse` cannot read fails with a FormatException. This module reproduces the
forms clients actually send: ISO 8601 (`T` or space, any fraction length, `Z` or an offset
such as `+7`, `-07:00`, `+0700`), the invariant culture's `M/d/yyyy h:mm:ss [AM|PM]`, and
RFC 1123 (`Wed, 26 Apr 2023 18:23:40 GMT`). Anything else counts as a format error, which is
also what an unencoded `+` becomes (it arrives as a space: `10:58:00 00:00`).
"""

from __future__ import annotations

import re
from datetime import date

from bridge.simulator.ticks import MAX_TICKS, TICKS_PER_SECOND, from_parts


class TimeFormatError(ValueError):
    """`DateTime.Parse` would throw a FormatException."""


class MissingTimeZone(ValueError):
    """Parsed, but carries no zone: `DateTimeKind.Unspecified`."""


_TIME = r"(?P<h>\d{1,2}):(?P<mi>\d{1,2})(?::(?P<s>\d{1,2})(?:\.(?P<f>\d+))?)?"
_ZONE = r"(?P<zone>[Zz]|GMT|UTC|[+-]\d{1,2}(?::\d{1,2})?|[+-]\d{4})"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_ISO = re.compile(
    rf"(?P<y>\d{{4}})-(?P<mo>\d{{1,2}})-(?P<d>\d{{1,2}})(?:(?:T|\s+){_TIME})?\s*{_ZONE}?"
)
_US = re.compile(
    rf"(?P<mo>\d{{1,2}})/(?P<d>\d{{1,2}})/(?P<y>\d{{4}})"
    rf"(?:\s+{_TIME}(?:\s*(?P<ampm>[AaPp][Mm]))?)?\s*{_ZONE}?"
)
_RFC1123 = re.compile(
    rf"(?:(?P<dow>{'|'.join(_DAYS)}),?\s*)?(?P<d>\d{{1,2}})\s+(?P<mon>{'|'.join(_MONTHS)})"
    rf"\s+(?P<y>\d{{4}})\s+{_TIME}\s*{_ZONE}?",
    re.IGNORECASE,
)


def parse_query_time(text: str) -> int:
    """UTC ticks of a query-string time; raises TimeFormatError or MissingTimeZone."""
    value = text.strip()
    for pattern in (_ISO, _US, _RFC1123):
        match = pattern.fullmatch(value)
        if match:
            return _to_utc_ticks(match)
    raise TimeFormatError(f"String '{text}' was not recognized as a valid DateTime.")


def _to_utc_ticks(match: re.Match[str]) -> int:
    fields = match.groupdict()
    year, day = int(fields["y"]), int(fields["d"])
    month = _MONTHS.index(fields["mon"].title()) + 1 if fields.get("mon") else int(fields["mo"])
    hour = int(fields["h"] or 0)
    minute, second = int(fields["mi"] or 0), int(fields["s"] or 0)
    if fields.get("ampm"):
        if not 1 <= hour <= 12:
            raise TimeFormatError("hour out of range for a 12-hour clock")
        hour = hour % 12 + (12 if fields["ampm"].upper() == "PM" else 0)
    if hour > 23 or minute > 59 or second > 59:
        raise TimeFormatError("time of day out of range")
    try:
        ticks = from_parts(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise TimeFormatError(str(exc)) from exc
    if fields.get("dow") and _DAYS[date(year, month, day).weekday()] != fields["dow"].title():
        raise TimeFormatError("the day of week was incorrect")
    if fields["f"]:
        # DateTime.Parse reads any number of digits and rounds to the nearest tick.
        ticks += round(int(fields["f"]) * TICKS_PER_SECOND / 10 ** len(fields["f"]))
    if fields["zone"] is None:
        raise MissingTimeZone("Date and time value must specify a time zone.")
    ticks -= _zone_offset_ticks(fields["zone"])
    if not 0 <= ticks <= MAX_TICKS:
        raise TimeFormatError("the UTC time is outside the DateTime range")
    return ticks


def _zone_offset_ticks(zone: str) -> int:
    if zone[0] not in "+-":
        return 0
    digits = zone[1:]
    if ":" in digits:
        hours_text, minutes_text = digits.split(":")
    elif len(digits) == 4:
        hours_text, minutes_text = digits[:2], digits[2:]
    else:
        hours_text, minutes_text = digits, "0"
    hours, minutes = int(hours_text), int(minutes_text)
    if hours > 23 or minutes > 59:
        raise TimeFormatError("time zone offset out of range")
    sign = -1 if zone[0] == "-" else 1
    return sign * (hours * 3600 + minutes * 60) * TICKS_PER_SECOND
