"""What a route hands its sink: one feed entry formatted as an event.

An `Event` carries the encoded body and, computed on first use, the CloudEvents attributes
(structured bodies are built without them; only binary mode and some sinks need them as a
mapping). Sinks read `body`, `id`, `type`, `key` (the StudyInstanceUID, the ordering key),
`content_type` and `ce_headers(prefix)`; `bridge.delivery.format` builds events.
"""

from __future__ import annotations

from typing import Literal, Protocol

from bridge.core.entry import Entry

Format = Literal["cloudevents", "cloudevents-binary", "raw", "eventgrid", "eventgrid-cloudevents"]
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
#: Formats whose body is a structured CloudEvent.
STRUCTURED_FORMATS = frozenset(("cloudevents", "eventgrid-cloudevents"))


class AttributeSource(Protocol):
    """What computes an event's CloudEvents attributes when they are first asked for."""

    def attributes(self, entry: Entry) -> dict[str, str]: ...


class Event:
    """One entry formatted for one route: CloudEvents attributes plus the encoded body.

    The attributes are computed when first asked for: structured bodies are built without
    them, and only binary mode and some sinks need them as a mapping."""

    __slots__ = ("_attributes", "_formatter", "body", "entry", "format")

    def __init__(
        self,
        entry: Entry,
        attributes: dict[str, str] | None,
        body: bytes,
        fmt: Format = "raw",
        formatter: AttributeSource | None = None,
    ) -> None:
        self.entry = entry
        self._attributes = attributes
        self._formatter = formatter
        self.body = body
        self.format = fmt

    @property
    def attributes(self) -> dict[str, str]:
        if self._attributes is None:
            assert self._formatter is not None, "an event without attributes names its source"
            self._attributes = self._formatter.attributes(self.entry)
        return self._attributes

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def key(self) -> str:
        """The ordering key: the StudyInstanceUID (CloudEvents `partitionkey`)."""
        return self.entry.study

    @property
    def content_type(self) -> str:
        """The body's media type: structured CloudEvents JSON, or plain JSON (the entry, or
        an Event Grid event)."""
        return STRUCTURED_CONTENT_TYPE if self.format in STRUCTURED_FORMATS else "application/json"

    def ce_headers(self, prefix: str) -> list[tuple[str, str]]:
        """The attributes as transport headers in binary mode (`ce_` for Kafka,
        `cloudEvents_` for Service Bus, `cloudEvents:` for RabbitMQ, `ce-` for HTTP and NATS);
        none in the other formats.
        `datacontenttype` travels as the transport's content type instead."""
        if self.format != "cloudevents-binary":
            return []
        return [
            (prefix + name, value)
            for name, value in self.attributes.items()
            if name != "datacontenttype"
        ]

    def __repr__(self) -> str:
        return f"Event(id={self.id!r}, type={self.type!r})"
