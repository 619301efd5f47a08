"""Turn feed entries into the events sinks deliver (the README's Events section).

`cloudevents` (default): a CloudEvents 1.0 event in structured JSON whose `data` is the
entry as served. `cloudevents-binary`: the entry as the body, the event's attributes carried
by the transport's headers (`Event.ce_headers`), per the CloudEvents protocol bindings.
`raw`: the entry object alone. The event `id` is deterministic
(`<feed.name>/<partition>/<sequence>`), so a re-delivery after a crash or a replay, or
through another URL of the same service, carries the same id and receivers (or Service Bus
duplicate detection) can drop it.

`eventgrid`: the event the Azure DICOM service publishes to Event Grid
(`Microsoft.HealthcareApis.DicomImageCreated|Updated|Deleted`, Event Grid schema), so that
consumers written for it read the bridge's unchanged; `eventgrid-cloudevents`: the same in
the CloudEvents schema, as Event Grid delivers it to a CloudEvents subscription. Their `id`
is a GUID as Event Grid's, yet deterministic: the name-based UUID (version 5, URL namespace)
of the CloudEvents id. `serviceHostName` and the subject's host are `feed.name` (the URL's
host unless set), so they too stay the same through another URL of the service.

The entry travels as the bytes the server sent (`Entry.json`), embedded without being
encoded again; when a page had to be parsed whole, its parsed object is encoded once, with
the same field names, order and values.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from bridge.config import default_feed_name
from bridge.core.entry import DEFAULT_PARTITION, Entry
from bridge.core.event import Event, Format
from bridge.core.redact import scrub

EVENT_TYPES = {
    "Create": "dicom.instance.created",
    "Update": "dicom.instance.updated",
    "Delete": "dicom.instance.deleted",
}

AZURE_EVENT_TYPES = {
    "Create": "Microsoft.HealthcareApis.DicomImageCreated",
    "Update": "Microsoft.HealthcareApis.DicomImageUpdated",
    "Delete": "Microsoft.HealthcareApis.DicomImageDeleted",
}
AZURE_FORMATS = frozenset(("eventgrid", "eventgrid-cloudevents"))


class Formatter:
    """Builds the events of one route from entries of one feed."""

    def __init__(
        self, feed_url: str, fmt: Format = "cloudevents", feed_name: str | None = None
    ) -> None:
        self.source = feed_url.rstrip("/")
        self.name = feed_name or default_feed_name(self.source)
        self.format = fmt
        self._after_id = b',"source":' + orjson.dumps(self.source) + b',"type":'
        self._types = {action: orjson.dumps(kind) for action, kind in EVENT_TYPES.items()}
        self._azure = fmt in AZURE_FORMATS

    def event(self, entry: Entry) -> Event:
        served = entry.json
        if self.format != "cloudevents":
            if self._azure:
                return self._azure_event(entry)
            body = served if served is not None else _dumps(entry.raw)
            return Event(entry, None, body, self.format, self)
        kind = self._types.get(entry.action)
        if served is None or kind is None or entry.flags:
            attributes = self.attributes(entry)
            data = orjson.Fragment(served) if served is not None else entry.raw
            return Event(entry, attributes, _dumps({**attributes, "data": data}), self.format)
        # The common case, spelled out: the same document as `attributes` + data, built
        # from pre-encoded pieces (a fifth of the cost of encoding a dict per event).
        dumps = orjson.dumps
        study = entry.study
        body = b"".join((
            b'{"specversion":"1.0","id":',
            dumps(f"{self.name}/{entry.partition}/{entry.sequence}"),
            self._after_id,
            kind,
            b',"subject":',
            dumps(f"studies/{study}/series/{entry.series}/instances/{entry.sop}"),
            b',"time":',
            dumps(entry.timestamp),
            b',"datacontenttype":"application/json","partitionkey":',
            dumps(study),
            b',"data":',
            served,
            b"}",
        ))  # fmt: skip
        return Event(entry, None, body, self.format, self)

    def attributes(self, entry: Entry) -> dict[str, str]:
        if self._azure:
            return self._azure_attributes(entry)
        attributes = {
            "specversion": "1.0",
            "id": f"{self.name}/{entry.partition}/{entry.sequence}",
            "source": self.source,
            "type": EVENT_TYPES.get(entry.action) or f"dicom.instance.{entry.action.lower()}",
            "subject": f"studies/{entry.study}/series/{entry.series}/instances/{entry.sop}",
            "time": entry.timestamp,
            "datacontenttype": "application/json",
            "partitionkey": entry.study,
        }
        if entry.flags:
            attributes["dicombridgeflags"] = " ".join(entry.flags)
        return attributes

    def _azure_event(self, entry: Entry) -> Event:
        """The Event Grid event of `entry` (Event Grid or CloudEvents schema): its `data`
        is what the service publishes, without the entry's other fields (metadata, state)."""
        attributes = self._azure_attributes(entry)
        data = {
            "partitionName": entry.partition,
            "imageStudyInstanceUid": entry.study,
            "imageSeriesInstanceUid": entry.series,
            "imageSopInstanceUid": entry.sop,
            "serviceHostName": self.name,
            "sequenceNumber": entry.sequence,
        }
        if self.format == "eventgrid-cloudevents":
            document: dict[str, Any] = {**attributes, "data": data}
        else:  # the Event Grid schema, its members in the order of the service's samples
            document = {
                "id": attributes["id"],
                "topic": attributes["source"],
                "subject": attributes["subject"],
                "data": data,
                "eventType": attributes["type"],
                "dataVersion": "1",
                "metadataVersion": "1",
                "eventTime": attributes["time"],
            }
        return Event(entry, attributes, _dumps(document), self.format)

    def _azure_attributes(self, entry: Entry) -> dict[str, str]:
        """The CloudEvents attributes of the Event Grid event of `entry` (the subject as
        the service writes it: the instance's URL without the scheme)."""
        partition = entry.partition
        scope = "" if partition == DEFAULT_PARTITION else f"/partitions/{partition}"
        action = entry.action
        return {
            "specversion": "1.0",
            "id": name_uuid(f"{self.name}/{partition}/{entry.sequence}"),
            "source": self.source,
            "type": AZURE_EVENT_TYPES.get(action) or f"Microsoft.HealthcareApis.DicomImage{action}",
            "subject": f"{self.name}/v1{scope}/studies/{entry.study}/series/{entry.series}"
            f"/instances/{entry.sop}",
            "time": entry.timestamp,
        }

    def dead_letter(self, subject: Entry | Event, reason: str, sink: str) -> Event:
        """The record a dead-letter target receives: what failed, why, and for which sink."""
        entry = subject.entry if isinstance(subject, Event) else subject
        record: dict[str, Any] = {
            "reason": scrub(reason),  # often quotes the peer, which may echo our credentials
            "sink": sink,
            "sequence": entry.sequence,
            "deadLetteredAt": datetime.now(UTC).isoformat(),
        }
        # The element exactly as served, when the page gave its bytes.
        served = orjson.Fragment(entry.json) if entry.json is not None else entry.raw
        if isinstance(subject, Event):
            record["id"] = subject.id
            record["event"] = orjson.Fragment(subject.body)
            if self._azure:  # its data is not the entry: `dlq redrive` rebuilds from this
                record["entry"] = served
        else:  # poison
            record["entry"] = served
        attributes = {"id": f"{self.name}/dead-letter/{sink}/{entry.sequence}", "type": "dead"}
        return Event(entry, attributes, _dumps(record))


_URL_NAMESPACE = hashlib.sha1(uuid.NAMESPACE_URL.bytes, usedforsecurity=False)
#: The variant bits of RFC 4122 over the hex digit that holds them.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def name_uuid(name: str) -> str:
    """`str(uuid.uuid5(uuid.NAMESPACE_URL, name))`, a fifth of its cost (the UUID object
    is what takes the time)."""
    digest = _URL_NAMESPACE.copy()
    digest.update(name.encode())
    x = digest.hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # e.g. an integer beyond 64 bits parsed by the fallback decoder
        import json

        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
