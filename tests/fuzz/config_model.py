"""Hypothesis strategies for config files: valid configs mutated at random, then broken as text.

`BASES` are valid configs covering every sink type and auth type, with secrets in every
secret field (inline and through `${FUZZ_SECRET}`). `documents()` mutates one (wrong
types, unknown and misspelt keys, missing keys, bad durations and URLs, deep nesting, huge
strings, references to unset variables, a root that is no mapping), renders it as YAML,
and sometimes breaks the text (YAML syntax, repeated keys, truncation, invalid UTF-8,
UTF-16) or replaces it by arbitrary text or bytes. `key_paths` gives the key paths a
config error may name for a document.
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

import yaml
from hypothesis import strategies as st

SECRET = "s3cr3t-fuzz-7f3a91"
ENV_SECRET = "env-s3cr3t-c0ffee42"
SECRET_ENV = {"FUZZ_SECRET": ENV_SECRET}
SECRETS = (SECRET, ENV_SECRET, base64.b64encode(SECRET.encode()).decode())
UNSET = "FUZZ_UNSET_VARIABLE"

_WEBHOOK_SECRET = "whsec_" + SECRETS[2]
BASES: list[dict[str, Any]] = [
    {
        "feed": {
            "url": "https://myws-mydicom.dicom.azurehealthcareapis.com",
            "api_version": "v1",
            "page_size": 50,
            "include_metadata": True,
            "poll_interval": "5s",
            "prefetch": 4,
            "timeout": "30s",
            "retry": {"initial": "200ms", "max": "30s"},
            "auth": {"type": "bearer", "token": SECRET},
        },
        "offsets": {"type": "sqlite", "path": "state/offsets.db", "commit_interval": "1s"},
        "sinks": [
            {
                "name": "archive",
                "type": "file",
                "path": "out/events.jsonl",
                "rotate_bytes": "100MB",
                "filter": {"actions": ["Create", "Delete"], "states": ["Current"]},
                "dead_letter": {"type": "file", "path": "out/dead.jsonl"},
                "batch_size": 500,
                "max_pending": 20000,
            }
        ],
        "http": {"listen": "127.0.0.1:9464"},
        "drain_timeout": "10s",
    },
    {
        "feed": {
            "url": "http://dicom.internal:8080/dicom",
            "api_version": "v2",
            "safety_lag": "60s",
            "auth": {
                "type": "azure",
                "tenant_id": "tenant",
                "client_id": "client",
                "client_secret": "${FUZZ_SECRET}",
            },
        },
        "sinks": [
            {
                "name": "events",
                "type": "kafka",
                "bootstrap_servers": "kafka-1:9092,kafka-2:9092",
                "topic": "dicom.{action}",
                "format": "cloudevents-binary",
                "producer": {"security.protocol": "SASL_SSL", "sasl.password": SECRET},
            }
        ],
    },
    {
        "feed": {
            "url": "http://127.0.0.1:8080",
            "auth": {"type": "bearer", "token": "${FUZZ_SECRET}"},
        },
        "sinks": [
            {
                "name": "queue",
                "type": "servicebus",
                "connection_string": "Endpoint=sb://ns.servicebus.windows.net/;"
                f"SharedAccessKeyName=send;SharedAccessKey={SECRET}",
                "queue": "dicom-changes",
                "time_to_live": "12h",
            },
            {"name": "out", "type": "stdout", "format": "raw"},
        ],
    },
    {
        "feed": {"url": "https://dicom.example", "auth": {"type": "none"}},
        "sinks": [
            {
                "name": "hooks",
                "type": "webhook",
                "url": "https://example.org/hooks/dicom",
                "secret": _WEBHOOK_SECRET,
                "bearer_token": SECRET,
                "headers": {"X-Api-Key": "${FUZZ_SECRET}"},
                "timeout": "15s",
                "dead_letter": {"type": "stdout"},
            }
        ],
    },
]

_DEEP = st.integers(50, 3000).map(lambda depth: f"__deep{depth}__")
"""A placeholder for `[[[...]]]` nested `depth` deep, put in the text after rendering
(PyYAML's own emitter would recurse that deep)."""
_HUGE = st.sampled_from([10_000, 300_000]).map(lambda size: "x" * size)
BAD_STRINGS = st.sampled_from(
    [
        "", " ", "5 parsecs", "-1s", "1e400s", "nan", "inf", "1d", "250 ms", "10MBB", "-5MB",
        "http://h:99999", "http://h:-1", "ftp://h", "http://", "//h", "http://[::1",
        "http://h\x00", "http://h h", "https://h/v1/changefeed", "http://h/?q=1#f",
        "host:port", ":9464", "[::1]:", "127.0.0.1:99999", "kafka-1", "a,,b",
        "${" + UNSET + "}", "${", "${1BAD}", "${A:-", "$${literal}", "${FUZZ_SECRET",
        "whsec_!!!", "Endpoint=;", "{unclosed", "dicom.{nope}", "é" * 10, "\u202e",
    ]
)  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    BAD_STRINGS,
    _HUGE,
    _DEEP,
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=5), max_size=3),
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a document (mapping keys and list indices), the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _parent_and_key(document: Any, path: tuple) -> tuple[Any, Any]:
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    return parent, path[-1]


def _typo(key: str) -> st.SearchStrategy[str]:
    if not key:
        return st.just("x")
    return st.integers(0, len(key) - 1).map(lambda i: key[:i] + key[i + 1 :] + key[i])


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    document: Any = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(document, dict):
            break
        path = draw(st.sampled_from(_paths(document)))
        kind = draw(st.sampled_from(["set", "set", "delete", "unknown", "typo", "root"]))
        if kind == "root":
            document = draw(VALUES.filter(lambda value: not isinstance(value, dict)))
        elif not path:
            document[draw(st.text(max_size=10))] = draw(VALUES)
        else:  # VALUES hold no secret: a secret never moves out of its field
            parent, key = _parent_and_key(document, path)
            if kind == "set":
                parent[key] = draw(VALUES)
            elif kind == "delete":
                del parent[key]
            elif isinstance(parent, dict) and isinstance(key, str):
                name = draw(_typo(key)) if kind == "typo" else draw(st.text(max_size=10))
                parent[name] = parent.pop(key) if kind == "typo" else draw(VALUES)
    return document


_SYNTAX = [":", "{", "}", "[", "]", "&a", "*a", "!tag", "%", "@", "`", "\t", "'", '"', "\n  ",
           "- ", "? ", "|", ">", "#", ",", "<<: *b\n"]  # fmt: skip


@st.composite
def _broken_text(draw: st.DrawFn, text: str) -> bytes:
    """`text`, sometimes broken: YAML syntax, a repeated line, truncation, bad encodings."""
    damage = draw(st.sampled_from([None, None, None, "syntax", "repeat", "cut", "utf8", "utf16"]))
    if damage == "syntax":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(_SYNTAX)) + text[at:]
    elif damage == "repeat":
        lines = text.splitlines(keepends=True)
        at = draw(st.integers(0, len(lines) - 1))
        text = "".join(lines[: at + 1] + lines[at:])
    elif damage == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    data = text.encode("utf-16" if damage == "utf16" else "utf-8")
    if damage == "utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff\xfe" + data[at:]
    return data


@st.composite
def documents(draw: st.DrawFn) -> tuple[bytes, Any]:
    """A config file's bytes, and the document they were rendered from (None when the
    bytes are arbitrary)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200) | st.text(max_size=200).map(str.encode)), None
    document = draw(_mutated())
    text = yaml.safe_dump(document, allow_unicode=draw(st.booleans()), sort_keys=False)
    text = re.sub(r"__deep(\d+)__", lambda match: "[" * int(match[1]) + "]" * int(match[1]), text)
    return draw(_broken_text(text)), document


def key_paths(document: Any) -> set[str]:
    """The key paths of `document` as config errors write them (`sinks[0].path`, and
    `(top level)` for the root): through mapping keys that are strings (quoted when empty
    or not printable) and list indices."""
    rendered = set()

    def walk(value: Any, text: str) -> None:
        rendered.add(text or "(top level)")
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    key = key if key.isprintable() and key else repr(key)
                    walk(item, f"{text}.{key}" if text else key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{text}[{index}]")

    walk(document, "")
    return rendered
