"""Unit level: page and entry parsing never fail but with `MalformedPage`, never hang (the
deadline), keep every entry's served bytes, and every event built from what they parse
is one line of valid JSON carrying the entry."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from bridge.core.entry import Entry, parse_entry
from bridge.delivery.format import Formatter
from bridge.feed import MalformedPage, parse_page
from tests.fuzz.feed_model import (
    GARBAGE_PAGES,
    JSON_VALUES,
    Feed,
    Row,
    bad_rows,
    entries,
    feeds,
)
from tests.fuzz.settings import fuzz

FORMATTERS = [Formatter("https://dicom.test", fmt) for fmt in ("cloudevents", "raw")]


@st.composite
def pages(draw: st.DrawFn) -> bytes:
    """One window of a fuzzed feed, whole or cut short, or a garbage answer to it."""
    feed: Feed = draw(feeds())
    window = draw(st.integers(0, (feed.latest - 1) // feed.page_size))
    body = feed.page(window * feed.page_size, feed.page_size)
    if feed.garbage and draw(st.booleans()):
        body = draw(st.sampled_from([b for bodies in feed.garbage.values() for b in bodies]))
    if draw(st.integers(0, 9)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    return body


BODIES = st.one_of(pages(), GARBAGE_PAGES, st.binary(max_size=200))


def _decoded(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return MalformedPage


@fuzz(150)
@given(BODIES)
def test_parse_page_takes_exactly_json_arrays_and_keeps_each_entry(body: bytes) -> None:
    expected = _decoded(body)
    try:
        parsed = parse_page(body)
    except MalformedPage as exc:
        assert not isinstance(expected, list), f"a JSON array was refused: {exc}"
        assert "\n" not in str(exc)
        return
    assert isinstance(expected, list)
    assert [entry.raw for entry in parsed] == expected
    for entry, value in zip(parsed, expected, strict=True):
        if entry.json is not None:
            assert orjson.loads(entry.json) == value  # the served bytes are this entry
        _check_invariants(entry)


@fuzz(150)
@given(JSON_VALUES | entries(7) | bad_rows(7).map(lambda row: row.value))
def test_parse_entry_never_raises(value: Any) -> None:
    _check_invariants(parse_entry(value))


@fuzz(100)
@given(entries(7))
@example(  # regression: three exact names hid the other casings from the tolerant parser
    {
        "sequence": 7,
        "sopInstanceUid": "1.2.3.4",
        "action": "Create",
        "StudyInstanceUID": "1.2",
        "seriesinstanceuid": "1.2.3",
        "TIMESTAMP": "2024-05-10T16:13:00.52Z",
    }
)
def test_a_valid_entry_in_any_casing_and_order_is_understood(value: dict[str, Any]) -> None:
    entry = parse_entry(value)
    assert not entry.poison, entry.problem
    assert entry.sequence == 7
    assert entry.action in ("Create", "Update", "Delete")
    assert entry.state in (None, "Current", "Replaced", "Deleted")


@fuzz(100)
@given(bad_rows(7))
@example(  # regression: a sequence beyond int64 was taken, and its cursor could not be stored
    Row(
        7,
        b'{"sequence":9223372036854775808,"studyInstanceUid":"1","seriesInstanceUid":"2",'
        b'"sopInstanceUid":"3","action":"Create","timestamp":"t"}',
        "bad",
        sequence_readable=False,
    )
)
def test_a_broken_entry_is_poison_and_keeps_a_readable_sequence(row: Row) -> None:
    [entry] = parse_page(b"[" + row.body + b"]")
    assert entry.poison
    assert entry.sequence == (7 if row.sequence_readable else None)


@fuzz(60)
@given(pages())
def test_events_and_dead_letters_are_one_json_line_carrying_the_entry(body: bytes) -> None:
    try:
        parsed = parse_page(body)
    except MalformedPage:
        return
    for entry in parsed:
        for formatter in FORMATTERS:
            if entry.poison:
                record = _line(formatter.dead_letter(entry, entry.problem, "fuzz").body)
                assert (record["reason"], record["entry"]) == (entry.problem, entry.raw)
                continue
            event = _line(formatter.event(entry).body)
            assert (event["data"] if formatter.format == "cloudevents" else event) == entry.raw


def test_pretty_printed_entries_in_a_compact_page_stay_one_line() -> None:
    """Regression: a page starting like the server's (`[{"sequence":`) was cut into its
    entries' bytes even when those held line breaks, so a JSON Lines sink wrote one event
    over several lines."""
    body = b'[{"sequence":1,\n"studyInstanceUid":"1","seriesInstanceUid":"2",'
    body += b'"sopInstanceUid":"3","action":"Create","timestamp":"t"}]'
    [entry] = parse_page(body)
    assert b"\n" not in FORMATTERS[0].event(entry).body


def _line(body: bytes) -> dict[str, Any]:
    assert b"\n" not in body and b"\r" not in body, "a JSON Lines record spans lines"
    value = orjson.loads(body)
    assert isinstance(value, dict)
    return value


def _check_invariants(entry: Entry) -> None:
    if entry.poison:
        assert isinstance(entry.problem, str) and entry.problem
        assert "\n" not in entry.problem
        return
    assert type(entry.sequence) is int and entry.sequence > 0
    for text in (entry.study, entry.series, entry.sop, entry.action, entry.timestamp):
        assert isinstance(text, str) and text
    assert isinstance(entry.partition, str) and entry.partition
    assert entry.state is None or isinstance(entry.state, str)
