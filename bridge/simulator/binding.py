"""Query-string model binding as ASP.NET Core does it for the change-feed actions.

Reproduced because clients are tested against the exact 400s (docs/changefeed.md, Query parameters):
- names match case-insensitively, the first value wins, unknown names are ignored;
- integers go through .NET's `Int32Converter`/`Int64Converter` (trimmed, optional sign,
  `0x`/`&h`/`#` hexadecimal in two's complement), booleans through `bool.Parse`
  (`true`/`false` in any case), a blank value is "The value '' is invalid.";
- `[Range]` failures read "The field X must be between A and B.";
- the first failing key in ModelState order (ordinal, case-insensitive) is reported as
  `The query parameter '{key}' is invalid. {error}`. Keys are the C# names: the v1 action's
  parameters (`offset`, `limit`), the v2 options object's properties (`Offset`, `Limit`,
  `StartTime`, `EndTime`), and the `includeMetadata` parameter;
- the v2 window check (`IValidatableObject`, key '') runs only when every property bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from bridge.simulator.ticks import MAX_TICKS, MIN_TICKS, format_invariant
from bridge.simulator.timeparse import MissingTimeZone, TimeFormatError, parse_query_time

INT32 = 32
INT64 = 64
_DECIMAL = re.compile(r"[+-]?[0-9]+")
_HEX = re.compile(r"(?:0[xX])?[0-9A-Fa-f]+")
# RangeAttribute(0, long.MaxValue) falls to its (double, double) overload, so .NET prints
# the bound as a double.
LONG_MAX_AS_DOUBLE = "9.223372036854776E+18"


class QueryError(Exception):
    """A 400 whose plain-text body is `str(self)`."""


@dataclass(frozen=True, slots=True)
class V1Query:
    offset: int
    limit: int
    include_metadata: bool


@dataclass(frozen=True, slots=True)
class V2Query:
    offset: int
    limit: int
    start: int  # ticks, inclusive
    end: int  # ticks, exclusive
    include_metadata: bool


@dataclass(frozen=True, slots=True)
class _Integral:
    key: str
    bits: int
    default: int
    low: int
    high: int
    high_text: str


V1_OFFSET = _Integral("offset", INT64, 0, 0, 2**63 - 1, LONG_MAX_AS_DOUBLE)
V1_LIMIT = _Integral("limit", INT32, 10, 1, 100, "100")
V2_OFFSET = _Integral("Offset", INT64, 0, 0, 2**63 - 1, LONG_MAX_AS_DOUBLE)
V2_LIMIT = _Integral("Limit", INT32, 100, 1, 200, "200")
INCLUDE_METADATA = "includeMetadata"


def parse_query_string(raw: bytes) -> dict[str, list[str]]:
    """Values by lower-cased name, in order; `+` decodes to a space as in ASP.NET."""
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        params.setdefault(name.lower(), []).append(value)
    return params


class _Binder:
    """Collects the first error per key, as ModelState does."""

    def __init__(self, params: dict[str, list[str]]) -> None:
        self._params = params
        self._errors: dict[str, str] = {}

    def _values(self, key: str) -> list[str] | None:
        values = self._params.get(key.lower())
        if values is None:
            return None
        if not values[0].strip():
            self._errors.setdefault(key, f"The value '{','.join(values)}' is invalid.")
            return None
        return values

    def _not_valid(self, key: str, values: list[str]) -> None:
        self._errors.setdefault(key, f"The value '{','.join(values)}' is not valid for {key}.")

    def integral(self, field: _Integral) -> int:
        values = self._values(field.key)
        if values is None:
            return field.default
        value = _convert_integral(values[0].strip(), field.bits)
        if value is None:
            self._not_valid(field.key, values)
            return field.default
        if not field.low <= value <= field.high:
            self._errors.setdefault(
                field.key,
                f"The field {field.key} must be between {field.low} and {field.high_text}.",
            )
        return value

    def boolean(self, key: str, default: bool) -> bool:
        values = self._values(key)
        if values is None:
            return default
        text = values[0].strip().lower()
        if text not in ("true", "false"):
            self._not_valid(key, values)
            return default
        return text == "true"

    def time(self, key: str, default: int) -> int:
        values = self._params.get(key.lower())
        if not values or not values[0].strip():  # the binder skips a blank value
            return default
        try:
            return parse_query_time(values[0])
        except MissingTimeZone as exc:
            self._errors.setdefault(key, str(exc))
        except TimeFormatError:
            # TryAddModelException: a FormatException carries no ModelState message.
            self._errors.setdefault(key, "")
        return default

    def raise_first(self) -> None:
        if self._errors:
            key = min(self._errors, key=str.upper)
            raise QueryError(f"The query parameter '{key}' is invalid. {self._errors[key]}")


def _convert_integral(text: str, bits: int) -> int | None:
    """`BaseNumberConverter.ConvertFrom` on a trimmed string; None on Format/Overflow."""
    if text.startswith("#"):
        digits = text[1:]
    elif text[:2].lower() in ("0x", "&h"):
        digits = text[2:]
    elif _DECIMAL.fullmatch(text):
        value = int(text)
        return value if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) else None
    else:
        return None
    if not _HEX.fullmatch(digits):
        return None
    unsigned = int(digits[2:] if digits[:2].lower() == "0x" else digits, 16)
    if unsigned >= 2**bits:
        return None
    return unsigned - 2**bits if unsigned >= 2 ** (bits - 1) else unsigned


def bind_v1(params: dict[str, list[str]]) -> V1Query:
    binder = _Binder(params)
    query = V1Query(
        offset=binder.integral(V1_OFFSET),
        limit=binder.integral(V1_LIMIT),
        include_metadata=binder.boolean(INCLUDE_METADATA, True),
    )
    binder.raise_first()
    return query


def bind_v2(params: dict[str, list[str]]) -> V2Query:
    binder = _Binder(params)
    query = V2Query(
        offset=binder.integral(V2_OFFSET),
        limit=binder.integral(V2_LIMIT),
        start=binder.time("StartTime", MIN_TICKS),
        end=binder.time("EndTime", MAX_TICKS),
        include_metadata=binder.boolean(INCLUDE_METADATA, True),
    )
    binder.raise_first()
    if query.end <= query.start:
        raise QueryError(
            "The query parameter '' is invalid. "
            f"The start time '{format_invariant(query.start)}' must occur strictly before "
            f"the end time '{format_invariant(query.end)}'."
        )
    return query


def bind_latest(params: dict[str, list[str]]) -> bool:
    binder = _Binder(params)
    include_metadata = binder.boolean(INCLUDE_METADATA, True)
    binder.raise_first()
    return include_metadata
