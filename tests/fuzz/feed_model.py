"""A change feed as rows of served bytes, and hypothesis strategies for good and bad ones.

A `Row` is what a server keeps for one sequence: the bytes it writes for it inside a page,
and what a correct reader must make of them (`kind`):

- `good`: an entry the bridge forwards. `value` is the JSON object as the standard
  library decodes the bytes (an oracle independent of the bridge's orjson); names and enum
  values come in any casing, with unknown fields, duplicated keys, metadata up to MBs.
- `bad`: valid JSON the bridge cannot understand (a field missing or of the wrong type,
  not an object): a poison entry, carrying its sequence when `sequence_readable`.

A `Feed` serves those rows with v1 semantics (`answer`), for the mock transport and the
loopback server alike. The first reads of some windows get garbage instead, as from a
broken proxy: a body that is not a JSON array, or the page with one row replaced by bytes
no JSON parser accepts in any context (`unparseable_rows`: invalid UTF-8, NaN, a 1e400, a
lone surrogate, a control character, 1100 levels of nesting, truncation, trailing
garbage). Such answers are transient: read again until the page comes, never poison.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import orjson
from hypothesis import strategies as st

from bridge.core.entry import FIELD_NAMES

NAMES = FIELD_NAMES
_LOWER_NAMES = {name.lower() for name in NAMES}
_STRINGS = ("studyInstanceUid", "seriesInstanceUid", "sopInstanceUid", "action", "timestamp")

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
TEXT = st.text(min_size=1, max_size=40)
UID = st.from_regex(r"[1-9][0-9]{0,3}(\.[0-9]{1,5}){1,5}", fullmatch=True) | TEXT
TIMESTAMP = st.sampled_from(["2024-05-10T16:12:03.1234567+00:00", "2024-05-10T16:13:00.52Z"]) | TEXT


def _enum(*words: str) -> st.SearchStrategy[str]:
    return st.sampled_from(words).flatmap(
        lambda word: st.sampled_from([word, word.lower(), word.upper()])
    )


def _casing(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name[0].upper() + name[1:], name.lower(), name.upper()])


def _metadata(size: int) -> dict[str, Any]:
    """DICOM JSON with a private UT element of `size` characters (MBs for huge entries)."""
    return {
        "00080060": {"vr": "CS", "Value": ["CT"]},
        "00200013": {"vr": "IS", "Value": [1]},
        "00291010": {"vr": "UT", "Value": ["x" * size]},
    }


@st.composite
def entries(draw: st.DrawFn, sequence: int, *, huge: bool = False, canonical: bool | None = None):
    """A valid entry object for `sequence`: as the server writes it (canonical: camelCase
    names in declaration order), or with names in any order and casing."""
    if canonical is None:
        canonical = draw(st.booleans())
    values: dict[str, Any] = {
        "sequence": sequence,
        "studyInstanceUid": draw(UID),
        "seriesInstanceUid": draw(UID),
        "sopInstanceUid": draw(UID),
        "action": draw(_enum("Create", "Update", "Delete")),
        "timestamp": draw(TIMESTAMP),
    }
    if draw(st.booleans()):
        values["partitionName"] = draw(TEXT)
    if draw(st.booleans()):
        values["state"] = draw(_enum("Current", "Replaced", "Deleted"))
    names = list(values) if canonical else draw(st.permutations(list(values)))
    entry = {(name if canonical else draw(_casing(name))): values[name] for name in names}
    unknown = st.text(max_size=10).filter(lambda key: key.lower() not in _LOWER_NAMES)
    entry.update(draw(st.dictionaries(unknown, JSON_VALUES, max_size=3)))
    size = 2_000_000 if huge else draw(st.sampled_from([None, 100, 5_000]))
    if size is not None:
        entry["metadata"] = _metadata(size)
    return entry


def _wrong(name: str) -> st.SearchStrategy[Any]:
    """Values `name` must not have (None is fine for the optional ones: it means absent)."""
    containers = st.one_of(
        st.lists(JSON_SCALARS, max_size=2), st.dictionaries(TEXT, JSON_SCALARS, max_size=2)
    )
    numbers = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    if name == "sequence":
        return st.one_of(
            st.none(),
            st.booleans(),
            st.integers(max_value=0),
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(2**63, 2**64 - 1),  # beyond the feed's int64
            st.just(10**20),  # beyond 64 bits: a float to orjson
            TEXT,
            containers,
        )
    wrong = st.booleans() | numbers | containers
    if name in _STRINGS:
        return wrong | st.none() | st.just("")
    if name == "partitionName":
        return wrong | st.just("")
    return wrong  # state


@dataclass(frozen=True, slots=True)
class Row:
    sequence: int
    body: bytes
    kind: Literal["good", "bad", "unparseable"]  # unparseable: only in garbage answers
    value: Any = None  # the decoded object (good and bad rows)
    sequence_readable: bool = True

    @property
    def poison(self) -> bool:
        return self.kind != "good"

    def __repr__(self) -> str:  # falsifying examples hold MBs of metadata
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return f"Row({self.sequence}, {self.kind}, {len(self.body)} bytes: {body!r})"


def _encode(draw: st.DrawFn, value: Any) -> tuple[bytes, Any]:
    """Bytes for `value` as some server could write them, and their decoded value."""
    styles = ["compact", "compact", "spaced", "ascii", "pretty", "wrapped", "dup"]
    style = draw(st.sampled_from(styles))
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    if style == "compact":
        return compact, value
    if style == "wrapped":  # compact, but a line break after each member
        wrapped = compact.replace(b',"', b',\r\n"')
        return (wrapped if _decodes_to(wrapped, value) else compact), value
    if style == "spaced":
        return json.dumps(value, ensure_ascii=False).encode(), value
    if style == "ascii":
        return json.dumps(value, separators=(",", ":")).encode(), value
    if style == "pretty":
        return json.dumps(value, indent=1, ensure_ascii=False).encode(), value
    if not isinstance(value, dict):
        return compact, value
    body = compact[:-1]  # a key given twice: the last one counts
    body += b',"dup":0,"dup":1}' if value else b'"dup":0,"dup":1}'
    return body, {**value, "dup": 1}


@st.composite
def good_rows(draw: st.DrawFn, sequence: int, *, huge: bool = False) -> Row:
    body, value = _encode(draw, draw(entries(sequence, huge=huge)))
    assert json.loads(body) == value
    return Row(sequence, body, "good", value)


@st.composite
def bad_rows(draw: st.DrawFn, sequence: int, *, readable: bool | None = None) -> Row:
    """Valid JSON that is no entry; `readable` forces whether its sequence can be read."""
    if readable is False and draw(st.booleans()):
        value: Any = draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
        body, value = _encode(draw, value)
        return Row(sequence, body, "bad", value, sequence_readable=False)
    value = draw(entries(sequence, canonical=True))
    if readable is None:
        broken = draw(st.sampled_from(NAMES))
    elif readable:
        broken = draw(st.sampled_from(NAMES[1:]))
    else:
        broken = "sequence"
    if broken in ("partitionName", "state") or draw(st.booleans()):
        value[broken] = draw(_wrong(broken))
    else:
        del value[broken]
    body, value = _encode(draw, value)
    return Row(sequence, body, "bad", value, sequence_readable=broken != "sequence")


_BREAKS = {
    "invalid UTF-8": b',"x":"\xff\xfe"}',
    "NaN": b',"x":NaN}',
    "infinity": b',"x":-Infinity}',
    "1e400": b',"x":1e400}',
    "lone surrogate": b',"x":"\\udc00"}',
    "control character": b',"x":"a\x01b"}',
    "comment": b"/* a comment */}",
    "deep nesting": b',"x":' + b"[" * 1100 + b"]" * 1100 + b"}",
}


@st.composite
def unparseable_rows(draw: st.DrawFn, sequence: int) -> Row:
    whole = orjson.dumps(draw(entries(sequence, canonical=True)))
    kind = draw(st.sampled_from([*_BREAKS, "truncated", "trailing garbage", "single quotes"]))
    if kind == "truncated":
        body = whole[: draw(st.integers(1, len(whole) - 1))]
    elif kind == "trailing garbage":
        body = whole + b"}"
    elif kind == "single quotes":
        body = b"{'sequence':%d}" % sequence
    else:
        body = whole[:-1] + _BREAKS[kind]
    return Row(sequence, body, "unparseable")


def rows(sequence: int, *, huge: bool = False) -> st.SearchStrategy[Row]:
    """Any row a server can serve, mostly good ones."""
    return st.one_of(good_rows(sequence, huge=huge), good_rows(sequence), bad_rows(sequence))


def _decodes_to(body: bytes, value: Any) -> bool:
    try:
        return json.loads(body) == value
    except ValueError:
        return False


def _is_json_array(body: bytes) -> bool:
    try:
        return isinstance(orjson.loads(body), list)
    except orjson.JSONDecodeError:
        return False


GARBAGE_PAGES = st.one_of(
    st.sampled_from(
        [b"", b"null", b"{}", b'"x"', b"1", b"true", b"[", b"[{", b'[{"sequence":1,', b"<html>"]
    ),
    st.binary(max_size=64),
    JSON_VALUES.map(orjson.dumps),
).filter(lambda body: not _is_json_array(body))
"""200 bodies that are not a JSON array: whatever they are, no entry can come of them."""


@dataclass
class Feed:
    """Rows by sequence, served with v1 window semantics; `garbage` (by window number)
    holds the answers the first whole-window requests get instead of the page."""

    rows: dict[int, Row]
    page_size: int
    separator: bytes = b","
    garbage: dict[int, list[bytes]] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        return max(self.rows, default=0)

    def page(self, offset: int, limit: int, replaced: Row | None = None) -> bytes:
        """The page of (offset, offset+limit], with `replaced` served for its sequence."""
        bodies = [
            replaced.body if replaced and s == replaced.sequence else row.body
            for s, row in sorted(self.rows.items())
            if offset < s <= offset + limit
        ]
        return b"[" + self.separator.join(bodies) + b"]"

    def answer(self, url: str) -> tuple[int, bytes]:
        """(status, body) for a GET of `url`."""
        parts = urlsplit(url)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        if parts.path.endswith("/changefeed/latest"):
            return (200, self.rows[self.latest].body) if self.rows else (204, b"")
        if not parts.path.endswith("/changefeed"):
            return 404, b"not found"
        offset, limit = int(query["offset"]), int(query["limit"])
        window, misaligned = divmod(offset, self.page_size)
        if not misaligned and limit == self.page_size and self.garbage.get(window):
            return 200, self.garbage[window].pop(0)
        return 200, self.page(offset, limit)

    @property
    def good(self) -> dict[int, Any]:
        return {s: row.value for s, row in self.rows.items() if not row.poison}

    @property
    def poison(self) -> list[Row]:
        return [row for row in self.rows.values() if row.poison]


@st.composite
def feeds(draw: st.DrawFn, max_sequence: int = 30) -> Feed:
    """A feed of up to `max_sequence` sequences with gaps, at most one huge entry, and
    windows whose first reads get garbage. Its latest row always names its sequence (the
    end of the feed must be knowable; an unreadable latest is retried, never skipped)."""
    sequences = sorted(draw(st.sets(st.integers(1, max_sequence), min_size=1, max_size=20)))
    huge = draw(st.sampled_from([None, *sequences]))
    feed_rows = {s: draw(rows(s, huge=s == huge)) for s in sequences[:-1]}
    last = sequences[-1]
    feed_rows[last] = draw(good_rows(last) | bad_rows(last, readable=True))
    page_size = draw(st.integers(2, 10))
    feed = Feed(feed_rows, page_size, separator=draw(st.sampled_from([b",", b", ", b",\n"])))
    for window in draw(st.sets(st.integers(0, (last - 1) // page_size), max_size=2)):
        feed.garbage[window] = draw(st.lists(garbage(feed, window), min_size=1, max_size=3))
    return feed


@st.composite
def garbage(draw: st.DrawFn, feed: Feed, window: int) -> bytes:
    """A broken answer to a window: not an array, or its page with one row unparseable."""
    offset = window * feed.page_size
    inside = [s for s in feed.rows if offset < s <= offset + feed.page_size]
    if not inside or draw(st.booleans()):
        return draw(GARBAGE_PAGES)
    replaced = draw(unparseable_rows(draw(st.sampled_from(inside))))
    return feed.page(offset, feed.page_size, replaced)
