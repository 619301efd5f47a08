"""The Service Bus sink sending one message per transfer (partitioned entities with
duplicate detection), against the in-process fake of the SDK: one link per study being
sent, studies concurrently, each in order; the switch when the entity refuses a batch."""

from __future__ import annotations

import asyncio
import logging

import pytest
from azure.servicebus._pyamqp.error import ErrorCondition
from azure.servicebus.exceptions import ServiceBusError, ServiceBusServerBusyError

from bridge.core.sink import DELIVERED, SinkFatalError, Transient
from sinks.servicebus._errors import refuses_batches
from sinks.servicebus.sink import ServiceBusSink
from tests.factories import events as make
from tests.unit import test_servicebus_sink as base

config = base.config
fake = base.fake  # the fixture: `fake(link_limit=..., senders=...)` -> the fake client

REFUSED = (
    "Batching brokered messages with distinct SessionId, PartitionKey, or MessageId  is not "
    "supported for an entity with partitioning and duplicate detection enabled."
    "LogicalPartitionId:143::PartitionKey:::SessionId:::MessageId:918e16dd::ViaPartitionKey:::"
)


def events(count: int, *, studies: int = 4, first: int = 1):
    return make(count, first=first, source="https://h", studies=studies)


def refusal(text: str = REFUSED) -> ServiceBusError:
    return ServiceBusError(message=text, condition=ErrorCondition.NotAllowed)


def sent_per_study(client, sent) -> dict[str, list[str]]:
    """Message ids per study in the order the fake links received them (one link per
    study at a time, so a study's order is the order of its link's transfers)."""
    study_of = {event.id: event.key for event in sent}
    found: dict[str, list[str]] = {}
    for sender in client.opened:
        for transfer in sender.sent:
            for message_id in transfer:
                found.setdefault(study_of[message_id], []).append(message_id)
    return found


def test_the_refusal_is_recognised_by_its_condition_and_words() -> None:
    assert refuses_batches(refusal())
    assert refuses_batches(
        refusal(
            "Message to a partitioned entity with duplicate detection enabled must have either "
            "PartitionKey or MessageId set."
        )
    )
    assert not refuses_batches(refusal("The SessionId was not set on a message"))
    assert not refuses_batches(ServiceBusError(message=REFUSED))  # no condition


async def test_studies_go_concurrently_on_links_of_their_own_each_in_order(fake) -> None:
    client = fake(senders=3)
    sink = ServiceBusSink(config(batching=False, max_in_flight=3), name="q")
    sent = events(24)
    try:
        assert await sink.send(sent) == [DELIVERED] * 24
    finally:
        await sink.close()
    assert len(client.opened) == 3  # max_in_flight links for 4 studies
    assert all(sender.single == [True] * len(sender.sent) for sender in client.opened)
    assert all(sender.most_active == 1 for sender in client.opened)
    assert sent_per_study(client, sent) == {
        study: [e.id for e in sent if e.key == study] for study in {e.key for e in sent}
    }
    assert all(sender.closed for sender in client.opened)


async def test_concurrent_sends_share_the_links(fake) -> None:
    client = fake(senders=2)
    sink = ServiceBusSink(config(batching=False, max_in_flight=2), name="q")
    batches = [events(3, studies=1, first=1 + 3 * i) for i in range(5)]  # one study each
    try:
        results = await asyncio.gather(*(sink.send(batch) for batch in batches))
    finally:
        await sink.close()
    assert all(outcomes == [DELIVERED] * 3 for outcomes in results)
    assert len(client.opened) == 2
    assert all(sender.most_active == 1 for sender in client.opened)


async def test_a_failure_holds_back_the_rest_of_its_study_only(fake) -> None:
    client = fake()
    client.senders[0].failures = [None, ServiceBusServerBusyError(message="busy")]
    sink = ServiceBusSink(config(batching=False, max_in_flight=1), name="q")
    sent = events(6, studies=2)  # studies take turns: 1.2.1, 1.2.0, 1.2.1...
    try:
        outcomes = await sink.send(sent)
    finally:
        await sink.close()
    first_study = [i for i, e in enumerate(sent) if e.key == sent[0].key]
    other = [i for i in range(6) if i not in first_study]
    delivered, failed, *held = [outcomes[i] for i in first_study]
    assert delivered == DELIVERED
    assert isinstance(failed, Transient) and failed.attempted
    assert all(isinstance(o, Transient) and not o.attempted for o in held)
    assert [outcomes[i] for i in other] == [DELIVERED] * 3


async def test_a_refused_batch_switches_to_single_messages_for_good(fake, caplog) -> None:
    client = fake(senders=4)
    client.senders[0].failures = [refusal()]
    sink = ServiceBusSink(config(max_in_flight=4), name="q")
    caplog.set_level(logging.WARNING, logger="sinks.servicebus.sink")
    try:
        first = await sink.send(events(8))
        second = await sink.send(events(8, first=9))
    finally:
        await sink.close()
    assert first == second == [DELIVERED] * 8
    transfers = [t for sender in client.opened for t in sender.sent]
    assert all(len(transfer) == 1 for transfer in transfers)
    assert len(transfers) == 16
    assert client.senders[0] in client.opened[:1]  # the batch link was kept, as one of them
    [warning] = caplog.messages
    assert "one by one" in warning and "`batching: false`" in warning


async def test_a_refusal_of_a_single_message_is_fatal(fake) -> None:
    client = fake()
    client.senders[0].failures = [refusal()]
    sink = ServiceBusSink(config(batching=False), name="q")
    try:
        with pytest.raises(SinkFatalError, match="on a partitioned entity"):
            await sink.send(events(1))
    finally:
        await sink.close()


async def test_check_says_messages_go_one_per_transfer(fake) -> None:
    fake(link_limit=1024 * 1024)
    line = await ServiceBusSink(config(batching=False), name="q").check()
    assert line == (
        "servicebus queue 'q' on myns.servicebus.windows.net: sender attached, one message "
        "per transfer, up to 1048576 bytes"
    )
