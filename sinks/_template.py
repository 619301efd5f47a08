"""Destination names rendered from the entry: Kafka's `topic`, RabbitMQ's `routing_key`,
NATS's `subject`, Redis's `stream` are a fixed name or a template over the same fields.

    {action}     create, update, delete
    {state}      current, replaced, deleted (unknown when the feed gives none)
    {partition}  the DICOM data partition, e.g. Microsoft.Default
    {type}       the CloudEvents type, e.g. dicom.instance.created
    {study} {series} {sop}  the UIDs

Each sink checks the characters around the fields (its broker's naming rules) with
`template_text`, and a rendered name per event.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.core.event import Event

#: The fields a destination template may use.
TEMPLATE_FIELDS = ("action", "state", "partition", "type", "study", "series", "sop")

#: What a config field's description says about its template.
TEMPLATE_HELP = (
    "{action} (create, update, delete), {state} (current, replaced, deleted; unknown when "
    "the feed gives none), {partition} (the DICOM data partition, e.g. Microsoft.Default), "
    "{type} (the CloudEvents type, e.g. dicom.instance.created), {study}, {series}, {sop} "
    "(the UIDs)"
)


def template_text(value: str, what: str) -> tuple[str, bool]:
    """The literal text of template `value` (the fields left out) and whether it has any
    field; ValueError (one line) for a malformed template or an unknown field."""
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(f"invalid {what} template {value!r}: {exc}") from None
    fields = [(field, spec, conv) for _, field, spec, conv in parts if field is not None]
    for field, spec, conversion in fields:
        if field not in TEMPLATE_FIELDS or spec or conversion:
            valid = ", ".join(f"{{{name}}}" for name in TEMPLATE_FIELDS)
            raise ValueError(f"unsupported template field in {value!r} (valid: {valid})")
    return "".join(text for text, _, _, _ in parts), bool(fields)


def fields_of(event: Event) -> dict[str, str]:
    """The values of the template fields for one event."""
    entry = event.entry
    return {
        "action": entry.action.lower(),
        "state": (entry.state or "unknown").lower(),
        "partition": entry.partition,
        "type": event.type,
        "study": entry.study,
        "series": entry.series,
        "sop": entry.sop,
    }


class NameTemplate:
    """A destination name, fixed or rendered per event."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.is_template = template_text(value, "name")[1]

    def render(self, event: Event) -> str:
        if not self.is_template:
            return self.value
        return self.value.format_map(fields_of(event))
