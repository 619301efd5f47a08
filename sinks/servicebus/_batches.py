"""Packing a route batch's messages into Service Bus batches, and splitting one the broker
refused as too large.

Encoding a message into a batch is the costly part of a send, so each group keeps the batch
it was packed into; only a split group is packed again when it is sent.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, NamedTuple

from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus.exceptions import MessageSizeExceededError

from bridge.core.sink import Outcome, Transient

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusSender


class Item(NamedTuple):
    batch_index: int  # position in the route's batch (`index` would shadow tuple.index)
    message: ServiceBusMessage
    size: int  # of the body
    key: str  # the study: the ordering key


class Group(NamedTuple):
    """Items sent in one transfer: their batch as packed, None after a split (rebuilt when
    sent), or one message sent alone."""

    items: list[Item]
    batch: ServiceBusMessageBatch | None = None


async def pack(
    sender: ServiceBusSender, items: list[Item], limit: int, max_count: int
) -> list[Group]:
    """Items in order, grouped into batches of at most `limit` bytes and `max_count`
    messages. An item too large for any batch is a group of its own: sent alone, it may
    still fit the entity's (larger, on Premium) single-message limit."""
    groups: list[Group] = []
    group: list[Item] = []
    batch = await sender.create_message_batch(limit)
    for item in items:
        if len(group) < max_count and _added(batch, item.message):
            group.append(item)
            continue
        if group:
            groups.append(Group(group, batch))
            group, batch = [], await sender.create_message_batch(limit)
        if _added(batch, item.message):
            group.append(item)
        else:
            groups.append(Group([item]))
    if group:
        groups.append(Group(group, batch))
    return groups


async def payload(sender: ServiceBusSender, group: Group, limit: int) -> Any:
    """What one transfer sends for `group`: its batch, its message alone, or a batch
    packed again after a split."""
    if group.batch is not None:
        return group.batch
    if len(group.items) == 1:
        return group.items[0].message
    batch = await sender.create_message_batch(limit)
    for item in group.items:
        batch.add_message(item.message)
    return batch


def halves(group: list[Item]) -> list[Group]:
    middle = len(group) // 2
    return [Group(group[:middle]), Group(group[middle:])]


def fail_rest(
    outcomes: list[Outcome | None], items: list[Item], tried: list[Item], outcome: Transient
) -> None:
    """`outcome` for every item of `items` without one yet: as is for those `tried`, as not
    attempted for the others (a retry budget counts from an event's first real send)."""
    held_back = dataclasses.replace(outcome, attempted=False)
    attempted = {item.batch_index for item in tried}
    for item in items:
        if outcomes[item.batch_index] is None:
            outcomes[item.batch_index] = outcome if item.batch_index in attempted else held_back


def _added(batch: Any, message: ServiceBusMessage) -> bool:
    try:
        batch.add_message(message)
    except MessageSizeExceededError:
        return False
    return True
