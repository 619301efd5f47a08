"""Answers of the change feed as entries, and the checks that an answer is the page asked for.

A page is a JSON array, cut into its elements' exact served bytes (events embed them, and a
poison element's dead letter keeps them). Anything else is `MalformedPage`, which the client
takes as transient, never as poison: a body that is not JSON (a proxy's HTML page) or is cut
short, a content type that is not JSON, a JSON value other than an array, and rows that
cannot be the answer to the request. The DICOM server answers `application/json`; in v1 its
rows are the sequences of the window `(offset, offset+limit]` in ascending order; in v2 at
most `limit` rows with `startTime <= timestamp < endTime` in (timestamp, sequence) order.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

from bridge.core.entry import Entry, parse_entry, parse_served
from bridge.feed._http import Answer
from bridge.feed._timestamps import to_ticks

_SPACE = b" \t\r\n"
_FIRST, _NEXT = b'[{"sequence":', b',{"sequence":'
#: The tokens that delimit array elements: strings (skipped whole), brackets and commas; a
#: lone quote is a string without its end (the scan stops there: it stays linear).
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{},]', re.DOTALL)
_OPEN, _CLOSE, _QUOTE, _END = frozenset(b"[{"), frozenset(b"]}"), ord('"'), ord("]")
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


class MalformedPage(Exception):
    """A 200 answer that is not the page (or latest entry) asked for."""


def page_of(answer: Answer, check: Callable[[list[Entry]], None], limit: int) -> list[Entry]:
    """The entries of a page answer of at most `limit` rows, after `check` (which raises
    MalformedPage)."""
    _check_content_type(answer)
    entries = parse_page(answer.content, limit)
    check(entries)
    return entries


def parse_latest(answer: Answer) -> Entry | None:
    """The latest entry, or None on an empty feed (204, an empty body or `null`)."""
    body = answer.content.strip()
    if answer.status == 204 or not body or body == b"null":
        return None
    _check_content_type(answer)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPage(f"invalid JSON ({exc}) in {len(body)} bytes") from None
    if not isinstance(value, dict):
        raise MalformedPage(f"expected a JSON object, got {_json_type(value)}")
    entry = parse_entry(value)
    if entry.sequence is None:  # the sequence is what readers need of the latest entry
        raise MalformedPage(entry.problem or "invalid entry")
    return entry


def parse_page(body: bytes, limit: int | None = None) -> list[Entry]:
    """A change-feed page: a JSON array of entries (each parsed tolerantly); more than
    `limit` of them is MalformedPage, found before they are parsed."""
    entries = _cut_page(body, limit)
    if entries is not None:
        return entries
    pieces = _elements(body)
    if limit is not None and len(pieces) > limit:
        raise MalformedPage(f"{len(pieces)} rows for a limit of {limit}")
    try:
        return [_served(piece) for piece in pieces]
    except orjson.JSONDecodeError as exc:
        raise MalformedPage(f"invalid JSON ({exc}) in {len(body)} bytes") from None


def check_window(entries: list[Entry], offset: int, limit: int) -> None:
    """v1: the rows of the window (offset, offset+limit], ascending, each once."""
    if len(entries) > limit:
        raise MalformedPage(f"{len(entries)} rows for a window of {limit}")
    previous = offset
    for entry in entries:
        sequence = entry.sequence
        if sequence is None:  # poison without a sequence: nothing to check
            continue
        if not offset < sequence <= offset + limit:
            raise MalformedPage(
                f"sequence {sequence} is outside the window ({offset}, {offset + limit}]"
            )
        if sequence <= previous:
            raise MalformedPage(f"sequence {sequence} after {previous}: rows out of order")
        previous = sequence


def check_time_page(entries: list[Entry], start: str | None, end: str, limit: int) -> None:
    """v2: at most `limit` rows of [start, end), in (timestamp, sequence) order. A row
    whose timestamp cannot be read becomes poison (nothing to check)."""
    if len(entries) > limit:
        raise MalformedPage(f"{len(entries)} rows for a limit of {limit}")
    low = to_ticks(start) if start is not None else None
    high = to_ticks(end)
    previous: tuple[int, int] | None = None
    for entry in entries:
        sequence = entry.sequence
        if sequence is None or entry.problem is not None:  # poison
            continue
        try:
            key = (to_ticks(entry.timestamp), sequence)
        except ValueError as exc:
            entry.problem = f"invalid timestamp: {exc}"
            continue
        if (low is not None and key[0] < low) or key[0] >= high:
            raise MalformedPage(
                f"sequence {entry.sequence} at {entry.timestamp} is outside [{start}, {end})"
            )
        if previous is not None and key <= previous:
            raise MalformedPage(f"sequence {entry.sequence} out of (timestamp, sequence) order")
        previous = key


def _check_content_type(answer: Answer) -> None:
    content_type = answer.headers.get("content-type")
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in ("application/json", "text/json") and not media.endswith("+json"):
        raise MalformedPage(f"content type {media or 'empty'!r} is not JSON")


def _cut_page(body: bytes, limit: int | None) -> list[Entry] | None:
    """Cut a page as the server writes it (compact, `sequence` first) into its entries'
    exact bytes, quickly. A cut inside a string value leaves a piece that does not parse,
    and a page with line breaks is not the server's layout: then None (`_elements`)."""
    if not (body.startswith(_FIRST) and body.endswith(b"}]")) or b"\n" in body or b"\r" in body:
        return None
    entries: list[Entry] = []
    start, end = 1, len(body) - 1
    while start < end:
        if limit is not None and len(entries) == limit:
            return None  # more pieces than rows allowed: `_elements` counts them
        cut = body.find(_NEXT, start, end)
        stop = end if cut < 0 else cut
        try:
            entries.append(parse_served(body[start:stop]))
        except orjson.JSONDecodeError:
            return None
        start = stop + 1
    return entries


def _elements(body: bytes) -> list[bytes]:
    """The served bytes of each element of a JSON array, found by scanning its brackets
    and commas outside strings; each is then parsed on its own, which validates it."""
    text = body.strip(_SPACE)
    if not text.startswith(b"["):
        raise MalformedPage(_not_an_array(text))
    pieces: list[bytes] = []
    depth, start = 0, 1
    for match in _TOKEN.finditer(text):
        char = text[match.start()]
        if char == _QUOTE:
            if match.end() - match.start() == 1:
                break  # a string that never ends
            continue
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
            if depth == 0:
                if char != _END or match.end() != len(text):
                    break
                last = text[start : match.start()].strip(_SPACE)
                return [*pieces, last] if last or pieces else pieces
        elif depth == 1:  # a comma between two elements
            pieces.append(text[start : match.start()].strip(_SPACE))
            start = match.end()
    raise MalformedPage(f"invalid JSON array (cut short or unbalanced) in {len(body)} bytes")


def _served(piece: bytes) -> Entry:
    """An entry from its served bytes, kept on one line (events and dead letters go to JSON
    Lines sinks; a line break can only be whitespace between tokens, never in a string)."""
    entry = parse_served(piece)
    if b"\n" in piece or b"\r" in piece:
        entry.json = piece.replace(b"\r", b" ").replace(b"\n", b" ")
    return entry


def _not_an_array(text: bytes) -> str:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON ({exc}) in {len(text)} bytes"
    return f"expected a JSON array, got {_json_type(value)}"


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "number")
