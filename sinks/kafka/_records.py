"""Events → Kafka records: topic, key, value and headers, per the CloudEvents Kafka binding.

- `cloudevents` (structured): the value is the event JSON, header
  `content-type: application/cloudevents+json; charset=UTF-8`.
- `cloudevents-binary`: the value is the entry JSON, the attributes are `ce_<name>` headers
  and `datacontenttype` is the `content-type` header.
- `raw`: the value is the entry JSON, header `content-type: application/json`.

The static `headers:` of the config follow. The key defaults to the StudyInstanceUID (the
binding's `partitionkey` mapping), so one study's records share a partition and keep their
order. A templated topic is rendered per event; a rendered name Kafka would refuse is a
per-event problem (`InvalidTopic`), not a reason to stop the route.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sinks._template import fields_of as topic_fields
from sinks.kafka.config import invalid_topic_reason

if TYPE_CHECKING:
    from bridge.core.event import Event
    from sinks.kafka.config import Config

STRUCTURED_CONTENT_TYPE = b"application/cloudevents+json; charset=UTF-8"

_KEYS: dict[str, Callable[[Event], str | None]] = {
    "study": lambda event: event.entry.study,
    "series": lambda event: event.entry.series,
    "instance": lambda event: event.entry.sop,
    "none": lambda event: None,
}


class InvalidTopic(Exception):
    """A templated topic rendered to a name Kafka does not accept."""


#: As confluent-kafka takes them (values are bytes here).
Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


class RecordBuilder:
    def __init__(self, config: Config) -> None:
        self._template = config.topic if config.topic_is_template else None
        self._topic = config.topic
        self._key = _KEYS[config.key]
        self._static: Headers = [(name, value.encode()) for name, value in config.headers.items()]
        #: Structured events all carry the same headers: one list, shared by every record.
        self._structured: Headers = [("content-type", STRUCTURED_CONTENT_TYPE), *self._static]

    def topic(self, event: Event) -> str:
        if self._template is None:
            return self._topic
        topic = self._template.format_map(topic_fields(event))
        reason = invalid_topic_reason(topic)
        if reason is not None:
            raise InvalidTopic(f"topic template {self._template!r}: {reason}")
        return topic

    def build(self, event: Event) -> Record:
        key = self._key(event)
        if event.format == "cloudevents":
            headers = self._structured
        else:
            headers = [*_format_headers(event), *self._static]
        return Record(
            self._topic if self._template is None else self.topic(event),
            None if key is None else key.encode(),
            event.body,
            headers,
        )


def _format_headers(event: Event) -> Headers:
    binary: Headers = [(name, value.encode()) for name, value in event.ce_headers("ce_")]
    return [*binary, ("content-type", event.content_type.encode())]
