"""The AMQP peer's own logic, without sockets: batch envelopes as the SDK encodes them, and
the broker semantics the Service Bus tests rely on."""

from __future__ import annotations

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus._pyamqp import _encode
from azure.servicebus._pyamqp.message import BatchMessage
from proton import Message

from tests.peers import amqp_store
from tests.peers.amqp_codec import decode, split_transfer, summary
from tests.peers.amqp_store import MESSAGE_SIZE_EXCEEDED, SERVER_BUSY, Refused, Store


def sdk_batch(*messages: ServiceBusMessage) -> bytes:
    """The transfer payload the SDK sends for a batch (message-format 0x80013700)."""
    batch = ServiceBusMessageBatch(max_size_in_bytes=1 << 20)
    for message in messages:
        batch.add_message(message)
    payload = bytearray()
    _encode.encode_payload(payload, BatchMessage(*batch._message))
    return bytes(payload)


def test_a_batch_envelope_is_split_into_its_messages() -> None:
    payload = sdk_batch(
        ServiceBusMessage(b'{"a":1}', message_id="m1", session_id="s1", subject="t"),
        ServiceBusMessage(b'{"a":2}', message_id="m2", application_properties={"k": "v"}),
    )
    parts = [decode(part) for part in split_transfer(payload)]
    assert [part.id for part in parts] == ["m1", "m2"]
    assert [bytes(part.body) for part in parts] == [b'{"a":1}', b'{"a":2}']
    assert parts[0].group_id == "s1" and parts[1].properties == {"k": "v"}


@pytest.mark.parametrize("body", [b'{"a":1}', b"\x00\x53", b"", "text"])
def test_a_plain_message_is_not_split(body) -> None:
    message = Message(body=body, id="m")
    payload = message.encode()
    assert split_transfer(payload) == [payload]


def test_a_summary_is_json_friendly() -> None:
    message = Message(body=b"\xff\x00", id="m", group_id="s", properties={"k": b"v"})
    view = summary(decode(message.encode()), size=9, sequence=3)
    assert view["body_base64"] == "/wA=" and "body" not in view
    assert (view["message_id"], view["session_id"], view["sequence"]) == ("m", "s", 3)
    assert view["application_properties"] == {"k": "v"}


def stored(store: Store, *ids: str, session: str | None = None) -> int:
    messages = [(Message(body=b"{}", id=i, group_id=session), 10) for i in ids]
    return store.accept("q", messages, size=10 * len(ids))


def test_duplicate_detection_within_the_window(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr(amqp_store.time, "monotonic", lambda: now[0])
    store = Store()
    assert stored(store, "a", "b") == 2
    assert stored(store, "a") == 1  # off by default
    store.settings.update({"duplicate_detection": True, "duplicate_window": 10})
    assert stored(store, "a", "c") == 1  # "a" was seen 0 s ago
    now[0] += 11
    assert stored(store, "a") == 1  # outside the window
    assert store.counters["duplicates"] == 1
    assert [s.message.id for s in store.queue("q").messages.values()] == ["a", "b", "a", "c", "a"]


def test_sessions_keep_their_order_and_locked_messages_wait() -> None:
    store = Store()
    stored(store, "x1", session="x")
    stored(store, "y1", session="y")
    stored(store, "x2", session="x")
    queue = store.queue("q")
    assert queue.sessions() == ["x", "y"]
    first = queue.next_available("x")
    first.locked = True
    assert queue.next_available("x").message.id == "x2"
    store.settle("q", first.sequence, consumed=False)
    assert queue.next_available("x").message.id == "x1"
    store.settle("q", first.sequence, consumed=True)
    assert [s.message.id for s in queue.messages.values()] == ["y1", "x2"]


def test_refusals_store_nothing() -> None:
    store = Store()
    store.settings.update({"max_message_size": 15})
    with pytest.raises(Refused) as too_large:
        stored(store, "a", "b")  # a 20-byte transfer
    assert too_large.value.condition == MESSAGE_SIZE_EXCEEDED
    store.settings.update({"server_busy": True})
    with pytest.raises(Refused) as busy:
        stored(store, "c")
    assert busy.value.condition == SERVER_BUSY
    assert store.view("q") == {"q": []}
    assert (store.counters["too_large"], store.counters["busy"]) == (1, 1)
    with pytest.raises(ValueError, match="unknown setting"):
        store.settings.update({"sever_busy": False})


def test_subscriptions_read_their_topic() -> None:
    store = Store()
    store.accept("topic", [(Message(body=b"{}", id="m"), 10)], size=10)
    assert store.queue("topic/Subscriptions/sub") is store.queue("topic")
    store.settings.update({"entities": ["topic"]})
    assert store.exists("topic/Subscriptions/sub") and not store.exists("other")


def test_a_partitioned_entity_with_duplicate_detection_refuses_batches_of_distinct_messages():
    store = Store()
    store.set_entity("q", {"partitioned": True, "duplicate_detection": True})
    with pytest.raises(Refused) as distinct_ids:
        stored(store, "a", "b")
    assert distinct_ids.value.condition == amqp_store.NOT_ALLOWED
    assert distinct_ids.value.description.startswith(amqp_store.BATCH_REFUSED)
    with pytest.raises(Refused, match="must have either PartitionKey or MessageId"):
        store.accept("q", [(Message(body=b"{}"), 10)], size=10)
    assert stored(store, "a") == stored(store, "b") == 1  # one by one
    assert stored(store, "c", "c") == 1  # one message id: accepted, the copy dropped
    with pytest.raises(Refused):  # one session, distinct message ids: still refused
        stored(store, "x", "y", session="s")
    assert store.counters["partitioned_refusals"] == 3
    store.accept("other", [(Message(body=b"{}", id=i), 10) for i in "de"], size=20)
    assert len(store.queue("other").messages) == 2  # another entity of the namespace


def test_partitioning_alone_takes_batches_and_entity_settings_are_checked():
    store = Store()
    store.settings.update({"partitioned": True})  # a Premium namespace created partitioned
    assert stored(store, "a", "b") == 2
    with pytest.raises(ValueError, match="not an entity setting: server_busy"):
        store.set_entity("q", {"server_busy": True})
