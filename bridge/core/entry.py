"""Change-feed entries: tolerant parsing that keeps the entry exactly as served.

The server writes camelCase names and PascalCase enum values, the docs show other casings,
so names and enum values are matched case-insensitively. The parsed JSON object is kept as
`raw` (unknown fields included), and, when the page could be cut into entries, the exact
bytes the server sent as `json`: events embed those bytes, so an entry is forwarded as
served without being encoded again. Only the few fields the bridge needs are read out of
it. An entry that cannot be understood is not dropped: it becomes a "poison" entry
(`problem` set) that routes send to their dead-letter target.
"""

from __future__ import annotations

from typing import Any

import orjson

DEFAULT_PARTITION = "Microsoft.Default"
MAX_SEQUENCE = 2**63 - 1  # the service's BIGINT identity; cursors are stored as int64
_FROM_JSON: Any = object()  # `raw` not parsed yet: `json` holds it

ACTIONS = {"create": "Create", "update": "Update", "delete": "Delete"}
STATES = {"current": "Current", "replaced": "Replaced", "deleted": "Deleted"}

#: The entry fields the bridge reads, as the server spells them.
FIELD_NAMES = (
    "sequence",
    "partitionName",
    "studyInstanceUid",
    "seriesInstanceUid",
    "sopInstanceUid",
    "action",
    "timestamp",
    "state",
)
_BY_LOWER = {name.lower(): name for name in FIELD_NAMES}


class Entry:
    """One change-feed row. `raw` is the JSON object as served; the rest is read from it.

    `position` is set by the reader: the cursor value that means "this entry and everything
    before it was handled" (a sequence in v1, a (timestamp, sequence) pair in v2).
    """

    __slots__ = (
        "_raw",
        "action",
        "flags",
        "json",
        "partition",
        "position",
        "problem",
        "sequence",
        "series",
        "sop",
        "state",
        "study",
        "timestamp",
    )

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.json: bytes | None = None
        self.problem: str | None = None
        self.flags: tuple[str, ...] = ()
        self.position: Any = None
        self.sequence: int | None = None
        self.partition = DEFAULT_PARTITION
        self.study = self.series = self.sop = ""
        self.action = ""
        self.state: str | None = None
        self.timestamp = ""

    def __repr__(self) -> str:
        if self.problem:
            return f"Entry(sequence={self.sequence}, problem={self.problem!r})"
        return f"Entry(sequence={self.sequence}, action={self.action}, state={self.state})"

    @property
    def raw(self) -> Any:
        """The entry's JSON value as served (parsed from `json` on first use when the page
        reader only read the entry's head)."""
        if self._raw is _FROM_JSON and self.json is not None:
            self._raw = orjson.loads(self.json)
        return self._raw

    @property
    def poison(self) -> bool:
        return self.problem is not None


def parse_served(piece: bytes) -> Entry:
    """An entry from its exact served bytes (raises orjson.JSONDecodeError if they are not
    valid JSON). The parsed value is not kept: the bytes are what gets forwarded, and a
    page of DICOM metadata as Python objects takes several times its size in memory;
    `raw` parses them again if someone asks."""
    entry = parse_entry(orjson.loads(piece))
    entry._raw = _FROM_JSON
    entry.json = piece
    return entry


def parse_entry(obj: Any) -> Entry:
    """Read the bridge's fields out of one JSON value; never raises."""
    entry = _exact(obj) if type(obj) is dict else None
    return entry if entry is not None else _tolerant(obj)


def _exact(obj: dict[str, Any]) -> Entry | None:
    """The fast path for entries exactly as the server writes them (camelCase names,
    PascalCase enums, valid values); None sends the entry to the tolerant path."""
    get = obj.get
    sequence, study, series, sop = (
        get("sequence"),
        get("studyInstanceUid"),
        get("seriesInstanceUid"),
        get("sopInstanceUid"),
    )
    action, timestamp, state = get("action"), get("timestamp"), get("state")
    partition = get("partitionName", DEFAULT_PARTITION)
    if not (
        type(sequence) is int
        and 0 < sequence <= MAX_SEQUENCE
        and type(study) is str
        and study
        and type(series) is str
        and series
        and type(sop) is str
        and sop
        and type(timestamp) is str
        and timestamp
        and type(partition) is str
        and partition
        and type(action) is str
        and action in _EXACT_ACTIONS
        and (state is None or (type(state) is str and state in _EXACT_STATES))
    ):
        return None
    entry = Entry(obj)
    entry.sequence, entry.partition = sequence, partition
    entry.study, entry.series, entry.sop = study, series, sop
    entry.action, entry.timestamp, entry.state = action, timestamp, state
    return entry


_EXACT_ACTIONS = frozenset(ACTIONS.values())
_EXACT_STATES = frozenset(STATES.values())


def _tolerant(obj: Any) -> Entry:
    """Names and enum values in any casing; a precise reason when something is wrong."""
    entry = Entry(obj)
    if not isinstance(obj, dict):
        entry.problem = f"entry is a JSON {type(obj).__name__}, not an object"
        return entry
    fields = _canonical_view(obj)

    sequence = fields.get("sequence")
    if type(sequence) is int and 0 < sequence <= MAX_SEQUENCE:
        entry.sequence = sequence
    else:
        entry.problem = f"invalid or missing sequence: {_excerpt(sequence)}"
        return entry

    partition = fields.get("partitionName")
    if partition is not None:
        if not isinstance(partition, str) or not partition:
            return _poison(entry, "partitionName", partition)
        entry.partition = partition

    for attr, name in (
        ("study", "studyInstanceUid"),
        ("series", "seriesInstanceUid"),
        ("sop", "sopInstanceUid"),
    ):
        value = fields.get(name)
        if not isinstance(value, str) or not value:
            return _poison(entry, name, value)
        setattr(entry, attr, value)

    action = fields.get("action")
    if not isinstance(action, str) or not action:
        return _poison(entry, "action", action)
    entry.action = ACTIONS.get(action.lower(), action)

    timestamp = fields.get("timestamp")
    if not isinstance(timestamp, str) or not timestamp:
        return _poison(entry, "timestamp", timestamp)
    entry.timestamp = timestamp

    state = fields.get("state")
    if state is not None:
        if not isinstance(state, str):
            return _poison(entry, "state", state)
        entry.state = STATES.get(state.lower(), state)
    return entry


def _canonical_view(obj: dict[Any, Any]) -> dict[str, Any]:
    """The bridge's fields by their camelCase names, whatever the casing of each name (a
    name spelled exactly so wins over other casings of it)."""
    view: dict[str, Any] = {}
    for key, value in obj.items():
        name = _BY_LOWER.get(key.lower()) if isinstance(key, str) else None
        if name is not None and (key == name or name not in view):
            view[name] = value
    return view


def _poison(entry: Entry, name: str, value: Any) -> Entry:
    entry.problem = f"invalid or missing {name}: {_excerpt(value)}"
    return entry


def _excerpt(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
