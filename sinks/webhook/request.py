"""What goes over the wire, and in which order.

One request per event by default: the body is the event as formatted for the route
(structured CloudEvent, the entry in binary mode with `ce-*` headers, or the raw entry).
With `batch: N`, one request carries up to N structured events as a JSON array.

`plan` splits a route batch into *lanes*. A lane's requests go out one after another;
different lanes go out concurrently. The route never has one study in two batches at
once, so per-study feed order only has to hold inside a batch: one lane per study for
single events, and a single lane for batch requests (a study may span two of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from sinks.webhook.signing import batch_webhook_id, webhook_id

if TYPE_CHECKING:
    from bridge.core.event import Event

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"

# CloudEvents HTTP binding §3.1.3.2: printable ASCII stays, except space, `"` and `%`.
_HEADER_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in ' "%')


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request: which events of the batch it carries, its id, body and headers
    (Content-Type and, in binary mode, the `ce-*` attributes; signing comes later)."""

    indexes: tuple[int, ...]
    studies: frozenset[str]
    msg_id: str
    body: bytes
    headers: dict[str, str]


def single(index: int, event: Event) -> Request:
    headers = {"content-type": event.content_type}
    for name, value in event.ce_headers("ce-"):
        headers[name] = quote(value, safe=_HEADER_SAFE)
    return Request((index,), frozenset((event.key,)), webhook_id(event.id), event.body, headers)


def batched(indexes: Sequence[int], events: Sequence[Event]) -> Request:
    members = [events[index] for index in indexes]
    return Request(
        tuple(indexes),
        frozenset(event.key for event in members),
        batch_webhook_id([event.id for event in members]),
        b"[" + b",".join(event.body for event in members) + b"]",
        {"content-type": BATCH_CONTENT_TYPE},
    )


def plan(events: Sequence[Event], batch: int | None) -> list[list[Request]]:
    """The lanes that deliver `events` (see the module docstring)."""
    if batch is not None:
        chunks = [
            range(start, min(start + batch, len(events))) for start in range(0, len(events), batch)
        ]
        return [[batched(chunk, events) for chunk in chunks]]
    lanes: dict[str, list[Request]] = {}
    for index, event in enumerate(events):
        lanes.setdefault(event.key, []).append(single(index, event))
    return list(lanes.values())
