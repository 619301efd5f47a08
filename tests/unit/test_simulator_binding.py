"""Query binding and validation as ASP.NET does it for the change feed (docs/changefeed.md)."""

from __future__ import annotations

import pytest

from bridge.simulator.binding import (
    QueryError,
    V1Query,
    V2Query,
    bind_latest,
    bind_v1,
    bind_v2,
    parse_query_string,
)
from bridge.simulator.ticks import MAX_TICKS, TICKS_PER_SECOND, from_parts
from bridge.simulator.timeparse import MissingTimeZone, TimeFormatError, parse_query_time


def v1(query: str) -> V1Query:
    return bind_v1(parse_query_string(query.encode()))


def v2(query: str) -> V2Query:
    return bind_v2(parse_query_string(query.encode()))


def test_defaults() -> None:
    assert v1("") == V1Query(offset=0, limit=10, include_metadata=True)
    assert v2("") == V2Query(offset=0, limit=100, start=0, end=MAX_TICKS, include_metadata=True)
    assert bind_latest({}) is True


def test_names_are_case_insensitive_the_first_value_wins_and_unknown_names_are_ignored() -> None:
    query = v1("OFFSET=5&Limit=7&limit=99&INCLUDEMETADATA=False&partition=x&foo=bar")
    assert query == V1Query(offset=5, limit=7, include_metadata=False)


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), (" 42 ", 42), ("+42", 42), ("0x2A", 42), ("&h2a", 42), ("#2A", 42)],
)
def test_integers_parse_like_dotnet_type_converters(text: str, value: int) -> None:
    assert (
        v1(f"limit={text.replace('+', '%2B').replace('&', '%26').replace('#', '%23')}").limit
        == value
    )


@pytest.mark.parametrize("text", ["TRUE", "true", " false ", "False"])
def test_booleans_accept_true_and_false_in_any_case(text: str) -> None:
    assert v1(f"includeMetadata={text}").include_metadata is (text.strip().lower() == "true")


V1_ERRORS = [
    ("limit=-1", "'limit' is invalid. The field limit must be between 1 and 100."),
    ("limit=0", "'limit' is invalid. The field limit must be between 1 and 100."),
    ("limit=101", "'limit' is invalid. The field limit must be between 1 and 100."),
    ("limit=blah", "'limit' is invalid. The value 'blah' is not valid for limit."),
    ("limit=", "'limit' is invalid. The value '' is invalid."),
    ("limit=2147483648", "'limit' is invalid. The value '2147483648' is not valid for limit."),
    ("limit=0xFFFFFFFF", "'limit' is invalid. The field limit must be between 1 and 100."),
    (
        "offset=-1",
        "'offset' is invalid. The field offset must be between 0 and 9.223372036854776E+18.",
    ),
    (
        "offset=92233720368547758070",
        "'offset' is invalid. The value '92233720368547758070' is not valid for offset.",
    ),
    ("offset=blah", "'offset' is invalid. The value 'blah' is not valid for offset."),
    ("offset=1.5", "'offset' is invalid. The value '1.5' is not valid for offset."),
    (
        "includeMetadata=0",
        "'includeMetadata' is invalid. The value '0' is not valid for includeMetadata.",
    ),
    (
        "includeMetadata=true-ish",
        "'includeMetadata' is invalid. The value 'true-ish' is not valid for includeMetadata.",
    ),
    (
        "includeMetadata=boolean",
        "'includeMetadata' is invalid. The value 'boolean' is not valid for includeMetadata.",
    ),
    # Several errors: the first key in ModelState order (ordinal, case-insensitive) wins.
    ("offset=-1&limit=0&includeMetadata=x", "'includeMetadata' is invalid. The value 'x'"),
    ("offset=-1&limit=0", "'limit' is invalid."),
]


@pytest.mark.parametrize(("query", "message"), V1_ERRORS)
def test_v1_validation_errors(query: str, message: str) -> None:
    with pytest.raises(QueryError) as error:
        v1(query)
    assert str(error.value).startswith(f"The query parameter {message}")


V2_ERRORS = [
    ("limit=0", "'Limit' is invalid. The field Limit must be between 1 and 200."),
    ("limit=201", "'Limit' is invalid. The field Limit must be between 1 and 200."),
    ("limit=blah", "'Limit' is invalid. The value 'blah' is not valid for Limit."),
    (
        "offset=-1",
        "'Offset' is invalid. The field Offset must be between 0 and 9.223372036854776E+18.",
    ),
    (
        "startTime=2023-05-03T10:58:00",
        "'StartTime' is invalid. Date and time value must specify a time zone.",
    ),
    (
        "endTime=2023-05-03T10:58:00",
        "'EndTime' is invalid. Date and time value must specify a time zone.",
    ),
    ("startTime=foo", "'StartTime' is invalid. "),
    ("startTime=2023-05-03T10:58:00+00:00", "'StartTime' is invalid. "),  # '+' became ' '
    (
        "startTime=2023-05-03T10:58:00Z&endTime=2023-05-03T10:58:00Z",
        "'' is invalid. The start time '05/03/2023 10:58:00 +00:00' must occur strictly "
        "before the end time '05/03/2023 10:58:00 +00:00'.",
    ),
    (
        "startTime=2023-05-03T10:59:00%2B01:00&endTime=2023-05-03T09:58:00Z",
        "'' is invalid. The start time '05/03/2023 09:59:00 +00:00' must occur strictly "
        "before the end time '05/03/2023 09:58:00 +00:00'.",
    ),
    ("startTime=9999-12-31T23:59:59.9999999Z", "'' is invalid. The start time '12/31/9999"),
]


@pytest.mark.parametrize(("query", "message"), V2_ERRORS)
def test_v2_validation_errors(query: str, message: str) -> None:
    with pytest.raises(QueryError) as error:
        v2(query)
    assert str(error.value).startswith(f"The query parameter {message}")


def test_latest_validates_include_metadata_only() -> None:
    assert bind_latest(parse_query_string(b"includeMetadata=FALSE&limit=0")) is False
    with pytest.raises(QueryError, match="The value 'asdf' is not valid for includeMetadata"):
        bind_latest(parse_query_string(b"includeMetadata=asdf"))


def test_v2_window_bounds_are_converted_to_utc_ticks() -> None:
    query = v2("startTime=2023-05-03T10:58:00.5%2B02:00&endTime=2023-05-03T10:58:00Z&offset=3")
    assert query.start == from_parts(2023, 5, 3, 8, 58, 0) + TICKS_PER_SECOND // 2
    assert query.end == from_parts(2023, 5, 3, 10, 58, 0)
    assert query.offset == 3


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2023-04-26T11:23:40.9025193-07:00", (2023, 4, 26, 18, 23, 40, 9_025_193)),
        ("2023-04-26T11:23:40.902519-07:0", (2023, 4, 26, 18, 23, 40, 9_025_190)),
        ("2023-04-26T11:23:40.90251-07", (2023, 4, 26, 18, 23, 40, 9_025_100)),
        ("2023-04-26T11:23:40.9025+7:00", (2023, 4, 26, 4, 23, 40, 9_025_000)),
        ("2023-04-26T11:23:40.902+7:0", (2023, 4, 26, 4, 23, 40, 9_020_000)),
        ("2023-04-26T11:23:40.90+7", (2023, 4, 26, 4, 23, 40, 9_000_000)),
        ("2023-04-26T11:23:40.9Z", (2023, 4, 26, 11, 23, 40, 9_000_000)),
        ("2023-04-26 11:23:40 +0200", (2023, 4, 26, 9, 23, 40, 0)),
        ("2023-04-26T11:23:40.123456789Z", (2023, 4, 26, 11, 23, 40, 1_234_568)),
        ("Wed, 26 Apr 2023 18:23:40 GMT", (2023, 4, 26, 18, 23, 40, 0)),
        ("04/26/2023 05:38:06 PM +00:00", (2023, 4, 26, 17, 38, 6, 0)),
        ("2023-04-26Z", (2023, 4, 26, 0, 0, 0, 0)),
    ],
)
def test_times_with_a_zone_parse_to_utc(text: str, utc: tuple[int, ...]) -> None:
    *parts, fraction = utc
    assert parse_query_time(text) == from_parts(*parts) + fraction


@pytest.mark.parametrize(
    "text",
    ["4/26/2023 5:38:06 PM", "2023-04-26T11:23:40.9025193", "2023-04-26", "2023-05-03 10:58"],
)
def test_times_without_a_zone_are_refused(text: str) -> None:
    with pytest.raises(MissingTimeZone):
        parse_query_time(text)


@pytest.mark.parametrize(
    "text",
    [
        "foo",
        "2023-04-26T11:23:40X",
        "2023-04-26T11:23:40+101:00",
        "2023-04-26T11:23:40 00:00",  # an unencoded '+' arrives as a space
        "2023-02-30T00:00:00Z",
        "2023-04-26T24:00:00Z",
        "Thu, 26 Apr 2023 18:23:40 GMT",  # 26 April 2023 was a Wednesday
        "0001-01-01T00:00:00+01:00",  # before DateTime.MinValue in UTC
    ],
)
def test_unreadable_times_are_format_errors(text: str) -> None:
    with pytest.raises(TimeFormatError):
        parse_query_time(text)


def test_a_blank_time_is_ignored() -> None:
    assert v2("startTime=&endTime=%20").end == MAX_TICKS
