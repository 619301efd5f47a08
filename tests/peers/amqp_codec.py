"""Bytes-level helpers of the AMQP peer: batch envelopes and message summaries.

The Service Bus SDK sends a batch as one transfer with message-format 0x80013700: an
envelope message whose data sections each hold one complete encoded message. Proton does
not expose the message format, so the envelope is recognised by content: every body
section is a data section whose bytes start with a section descriptor (`0x00 0x53` and a
section code 0x70..0x78). A JSON or text body never starts that way.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from proton import Data, Message

DATA_SECTION = 0x75
SECTION_CODES = range(0x70, 0x79)


def split_transfer(payload: bytes) -> list[bytes]:
    """The encoded messages a transfer carries: those of a batch envelope, or itself."""
    inner: list[bytes] = []
    offset = 0
    while offset < len(payload):
        data = Data()
        try:
            consumed = data.decode(payload[offset:])
        except Exception:
            return [payload]
        section = _data_section(data)
        if section is not None and _is_encoded_message(section):
            inner.append(section)
        elif inner or _described_code(data) == DATA_SECTION:
            return [payload]  # a data body that is not an encoded message
        offset += consumed
    return inner or [payload]


def _described_code(data: Data) -> int | None:
    data.rewind()
    if data.next() != Data.DESCRIBED:
        return None
    data.enter()
    data.next()
    code = data.get_object()
    data.exit()
    return int(code) if isinstance(code, int) else None


def _data_section(data: Data) -> bytes | None:
    if _described_code(data) != DATA_SECTION:
        return None
    data.rewind()
    data.next()
    data.enter()
    data.next()
    data.next()
    value = data.get_object()
    data.exit()
    return bytes(value) if isinstance(value, (bytes, memoryview)) else None


def _is_encoded_message(section: bytes) -> bool:
    return len(section) >= 3 and section[:2] == b"\x00\x53" and section[2] in SECTION_CODES


def decode(encoded: bytes) -> Message:
    message = Message()
    message.decode(encoded)
    return message


def summary(message: Message, size: int, sequence: int) -> dict[str, Any]:
    """A JSON-friendly view of a stored message, for the peer's control channel."""
    body = message.body
    if isinstance(body, memoryview):
        body = bytes(body)
    view: dict[str, Any] = {
        "sequence": sequence,
        "size": size,
        "message_id": _text(message.id),
        "session_id": message.group_id,
        "subject": message.subject,
        "content_type": message.content_type,
        "correlation_id": _text(message.correlation_id),
        "ttl": message.ttl or None,
        "application_properties": {str(k): _text(v) for k, v in (message.properties or {}).items()},
        "annotations": {str(k): _text(v) for k, v in (message.annotations or {}).items()},
    }
    if isinstance(body, bytes):
        try:
            view["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            view["body_base64"] = base64.b64encode(body).decode()
    else:
        view["body"] = _text(body)
    return view


def _text(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)
