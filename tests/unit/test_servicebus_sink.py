"""The Service Bus sink against an in-process fake of the SDK's client and sender: message
mapping, batch packing and splitting, outcome classification, timeouts, serialised sends."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus._pyamqp.error import AuthenticationException, ErrorCondition, TokenAuthFailure
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    MessagingEntityDisabledError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusConnectionError,
    ServiceBusError,
    ServiceBusQuotaExceededError,
    ServiceBusServerBusyError,
)

from bridge.core.sink import DELIVERED, Permanent, SinkError, SinkFatalError, Transient
from sinks.servicebus import sink as sink_module
from sinks.servicebus._errors import describe, is_fatal, transient
from sinks.servicebus.config import Config
from sinks.servicebus.sink import ENVELOPE_HEADROOM, ServiceBusSink, to_message
from tests.factories import events as make

KEY = "c2VjcmV0LWtleS12YWx1ZQ=="
CONNECTION = (
    f"Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=s;SharedAccessKey={KEY}"
)


class FakeSender:
    """Records what is sent; `failures` are raised by the next sends, in order (None: ok)."""

    def __init__(self, link_limit: int) -> None:
        self.link_limit = link_limit
        self.sent: list[list[str]] = []  # message ids per transfer
        self.single: list[bool] = []  # whether a transfer was one plain message
        self.failures: list[BaseException | None] = []
        self.refuse_above: int | None = None  # a broker limit below the link's
        self.hang = False
        self.closed = False
        self.active = self.most_active = 0

    async def create_message_batch(self, max_size_in_bytes: int | None = None):
        return ServiceBusMessageBatch(max_size_in_bytes=max_size_in_bytes or self.link_limit)

    async def send_messages(self, payload: Any, timeout: float | None = None) -> None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await asyncio.sleep(0.001)
            if self.hang:
                await asyncio.sleep(3600)
            if self.failures and (failure := self.failures.pop(0)) is not None:
                raise failure
            messages = (
                payload._messages if isinstance(payload, ServiceBusMessageBatch) else [payload]
            )
            if self.refuse_above and len(messages) > self.refuse_above:
                raise MessageSizeExceededError(message="exceeds the limit on the link")
            self.sent.append([m.message_id for m in messages])
            self.single.append(isinstance(payload, ServiceBusMessage))
        finally:
            self.active -= 1

    async def close(self) -> None:
        self.closed = True


class FakeClient:
    def __init__(self, senders: list[FakeSender]) -> None:
        self.senders = senders
        self.opened: list[FakeSender] = []
        self.closed = False

    def get_queue_sender(self, queue: str) -> FakeSender:
        sender = self.senders[len(self.opened)]
        self.opened.append(sender)
        return sender

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    """`fake(link_limit=..., senders=1)` -> the FakeClient every new sink will use."""

    def install(link_limit: int = 256 * 1024, senders: int = 1) -> FakeClient:
        client = FakeClient([FakeSender(link_limit) for _ in range(senders)])

        class Factory:
            @staticmethod
            def from_connection_string(connection_string: str, **options: Any) -> FakeClient:
                assert options == {"retry_total": 0}
                return client

        monkeypatch.setattr(sink_module, "ServiceBusClient", Factory)
        return client

    return install


def config(**options: Any) -> Config:
    return Config(name="q", type="servicebus", connection_string=CONNECTION, queue="q", **options)


def events(count: int, *, host: str = "h", **options):
    """Update events of two studies from source https://<host>."""
    return make(count, source=f"https://{host}", action="Update", studies=2, **options)


def ids(first: int, count: int) -> list[str]:
    return [f"h/Microsoft.Default/{sequence}" for sequence in range(first, first + count)]


# -- message mapping ----------------------------------------------------------------------


def test_structured_message_fields() -> None:
    [event] = events(1, first=7)
    message = to_message(event, config(sessions=True, time_to_live=90))
    assert message.message_id == "h/Microsoft.Default/7"
    assert message.session_id == "1.2.1"
    assert message.subject == "dicom.instance.updated"
    assert message.content_type == "application/cloudevents+json; charset=utf-8"
    assert message.time_to_live.total_seconds() == 90
    assert message.application_properties is None
    assert b"".join(message.body) == event.body


def test_binary_message_carries_cloudevents_properties() -> None:
    [event] = events(1, first=7, fmt="cloudevents-binary")
    message = to_message(event, config(format="cloudevents-binary"))
    assert message.session_id is None and message.time_to_live is None
    assert message.content_type == "application/json"
    assert message.application_properties == {
        "cloudEvents_specversion": "1.0",
        "cloudEvents_id": "h/Microsoft.Default/7",
        "cloudEvents_source": "https://h",
        "cloudEvents_type": "dicom.instance.updated",
        "cloudEvents_subject": "studies/1.2.1/series/1.2.1.1/instances/1.2.1.1.7",
        "cloudEvents_time": "2024-05-10T16:12:03.1234567+00:00",
        "cloudEvents_partitionkey": "1.2.1",
    }
    assert b"".join(message.body) == event.body  # the entry


async def test_an_event_the_sdk_refuses_to_map_is_permanent(fake) -> None:
    client = fake()
    sink = ServiceBusSink(config(), name="q")
    batch = [*events(1), *events(1, first=2, host="h" * 200), *events(1, first=3)]
    outcomes = await sink.send(batch)
    assert outcomes[0] == outcomes[2] == DELIVERED
    assert isinstance(outcomes[1], Permanent)
    assert outcomes[1].reason.startswith("not a valid Service Bus message: ")
    assert client.senders[0].sent == [["h/Microsoft.Default/1", "h/Microsoft.Default/3"]]


# -- packing ------------------------------------------------------------------------------


async def test_batches_are_cut_to_the_link_limit_in_order(fake) -> None:
    client = fake(link_limit=4096)
    sink = ServiceBusSink(config(), name="q")
    await sink.open()
    outcomes = await sink.send(events(30, pad=300))
    sender = client.senders[0]
    assert outcomes == [DELIVERED] * 30
    assert [i for transfer in sender.sent for i in transfer] == ids(1, 30)
    assert len(sender.sent) > 3 and not any(sender.single)
    assert sink._limit == 4096 - ENVELOPE_HEADROOM


async def test_max_batch_bytes_lowers_the_limit_but_never_raises_it(fake) -> None:
    fake(link_limit=8192)
    low = ServiceBusSink(config(max_batch_bytes=2048), name="q")
    await low.open()
    assert low._limit == 2048 - ENVELOPE_HEADROOM
    fake(link_limit=8192)
    high = ServiceBusSink(config(max_batch_bytes=100_000), name="q")
    await high.open()
    assert high._limit == 8192 - ENVELOPE_HEADROOM


async def test_batches_hold_at_most_the_service_message_count(fake, monkeypatch) -> None:
    monkeypatch.setattr(sink_module, "MAX_BATCH_MESSAGES", 4)
    client = fake()
    outcomes = await ServiceBusSink(config(), name="q").send(events(10))
    assert outcomes == [DELIVERED] * 10
    assert [len(transfer) for transfer in client.senders[0].sent] == [4, 4, 2]


async def test_an_event_too_large_for_a_batch_is_sent_alone(fake) -> None:
    client = fake(link_limit=4096)
    batch = [*events(3), *events(1, first=4, pad=8000), *events(2, first=5)]
    outcomes = await ServiceBusSink(config(), name="q").send(batch)
    sender = client.senders[0]
    assert outcomes == [DELIVERED] * 6
    assert sender.sent == [ids(1, 3), ids(4, 1), ids(5, 2)]
    assert sender.single == [False, True, False]


async def test_a_refused_batch_is_split_until_it_fits(fake) -> None:
    client = fake()
    sender = client.senders[0]
    sender.refuse_above = 3
    outcomes = await ServiceBusSink(config(), name="q").send(events(10))
    assert outcomes == [DELIVERED] * 10
    assert sender.sent == [ids(1, 2), ids(3, 3), ids(6, 2), ids(8, 3)]


async def test_a_single_message_the_broker_refuses_is_permanent(fake) -> None:
    client = fake()
    sender = client.senders[0]
    sender.failures = [None, MessageSizeExceededError(message="exceeds the limit (1000 bytes)")]
    batch = [*events(2), *events(1, first=3, pad=300_000), *events(1, first=4)]
    outcomes = await ServiceBusSink(config(), name="q").send(batch)
    assert outcomes[:2] == [DELIVERED] * 2 and outcomes[3] == DELIVERED
    assert isinstance(outcomes[2], Permanent)
    assert outcomes[2].reason.startswith("too large for Service Bus (")
    assert "exceeds the limit (1000 bytes)" in outcomes[2].reason
    assert sender.sent == [ids(1, 2), ids(4, 1)]


# -- failures -----------------------------------------------------------------------------


async def test_a_failure_fails_the_rest_without_sending_it(fake, monkeypatch) -> None:
    monkeypatch.setattr(sink_module, "MAX_BATCH_MESSAGES", 2)
    client = fake()
    sender = client.senders[0]
    sender.failures = [None, ServiceBusServerBusyError(message="busy")]
    outcomes = await ServiceBusSink(config(), name="q").send(events(6))
    assert outcomes[:2] == [DELIVERED] * 2
    assert len({outcome.reason for outcome in outcomes[2:]}) == 1
    assert outcomes[2].reason.startswith("throttled by Service Bus: ServiceBusServerBusyError")
    assert outcomes[2].retry_after is None
    assert sender.sent == [ids(1, 2)]  # nothing after the failed batch went out
    # Only the failed batch was attempted: a retry budget does not count for the others.
    assert [outcome.attempted for outcome in outcomes[2:]] == [True, True, False, False]


async def test_a_full_entity_waits_the_quota_delay_and_logs_it(fake) -> None:
    client = fake()
    client.senders[0].failures = [ServiceBusQuotaExceededError(message="entity full")]
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("sinks.servicebus.sink").addHandler(handler)
    try:
        outcomes = await ServiceBusSink(config(quota_retry_after="2m"), name="q").send(events(2))
    finally:
        logging.getLogger("sinks.servicebus.sink").removeHandler(handler)
    assert {o.retry_after for o in outcomes} == {120.0}
    assert len(lines) == 1 and "is full or disabled" in lines[0] and "120s" in lines[0]


@pytest.mark.parametrize(
    ("error", "what"),
    [
        (
            ServiceBusAuthenticationError(error=TokenAuthFailure(401, b"InvalidSignature")),
            "authentication failed",
        ),
        (
            ServiceBusAuthenticationError(error=TokenAuthFailure(404, b"No such entity")),
            "the entity does not exist",
        ),
        (ServiceBusAuthorizationError(message="no Send claim"), "not authorized to send"),
        (MessagingEntityNotFoundError(message="no such queue"), "the entity does not exist"),
        (ClientAuthenticationError(message="no credential"), "authentication failed"),
        (
            ImportError("aiohttp package is not installed"),
            "a Python package the Azure SDK needs is missing",
        ),
    ],
)
async def test_credentials_and_missing_entities_are_fatal(fake, error, what) -> None:
    client = fake()
    client.senders[0].failures = [error]
    with pytest.raises(SinkFatalError) as raised:
        await ServiceBusSink(config(), name="q").send(events(1))
    message = str(raised.value)
    assert message.startswith(f"servicebus queue 'q' on myns.servicebus.windows.net: {what} (")
    assert KEY not in message


async def test_a_token_exchange_that_broke_off_is_transient(fake) -> None:
    broken = AuthenticationException(
        ErrorCondition.InternalError, description="Failed to open CBS authentication link."
    )
    client = fake()
    client.senders[0].failures = [ServiceBusAuthenticationError(error=broken)]
    [outcome] = await ServiceBusSink(config(), name="q").send(events(1))
    assert isinstance(outcome, Transient)
    assert outcome.reason.startswith("ServiceBusAuthenticationError: ")


def test_a_refused_token_names_the_service_status() -> None:
    error = ServiceBusAuthenticationError(error=TokenAuthFailure(401, b"InvalidSignature: bad"))
    assert describe(error).endswith("(token refused with status 401: InvalidSignature: bad)")


async def test_a_failed_connection_is_transient_and_open_says_why(fake) -> None:
    client = fake(senders=2)

    async def refuse(max_size_in_bytes: int | None = None):
        raise ServiceBusConnectionError(message=f"connect failed SharedAccessKey={KEY}")

    client.senders[0].create_message_batch = refuse
    sink = ServiceBusSink(config(), name="q")
    with pytest.raises(SinkError) as raised:
        await sink.open()
    assert not isinstance(raised.value, SinkFatalError)
    assert KEY not in str(raised.value) and "**********" in str(raised.value)
    outcomes = await sink.send(events(2))  # the second sender works
    assert outcomes == [DELIVERED] * 2
    assert client.senders[0].closed


async def test_a_send_that_hangs_times_out_and_the_next_uses_a_new_sender(fake) -> None:
    client = fake(senders=2)
    client.senders[0].hang = True
    sink = ServiceBusSink(config(send_timeout="50ms"), name="q")
    [outcome] = await sink.send(events(1))
    assert isinstance(outcome, Transient)
    assert outcome.reason == "TimeoutError: no acknowledgement within 0.05s"
    assert client.senders[0].closed
    assert await sink.send(events(1)) == [DELIVERED]
    assert client.senders[1].sent == [ids(1, 1)]


async def test_concurrent_sends_take_turns_on_the_link(fake) -> None:
    client = fake()
    sink = ServiceBusSink(config(), name="q")
    results = await asyncio.gather(*(sink.send(events(5, first=1 + 5 * i)) for i in range(6)))
    assert all(outcomes == [DELIVERED] * 5 for outcomes in results)
    assert client.senders[0].most_active == 1
    assert sorted(i for transfer in client.senders[0].sent for i in transfer) == sorted(ids(1, 30))


async def test_check_describes_the_entity_and_closes(fake) -> None:
    client = fake(link_limit=1024 * 1024)
    line = await ServiceBusSink(config(), name="q").check()
    assert line == (
        "servicebus queue 'q' on myns.servicebus.windows.net: sender attached, the entity "
        "takes batches up to 1048576 bytes"
    )
    assert client.senders[0].closed and client.closed


def test_repr_has_no_secret() -> None:
    sink = ServiceBusSink(config(), name="q")
    assert KEY not in repr(sink)
    assert (
        repr(sink)
        == "ServiceBusSink(name='q', servicebus queue 'q' on myns.servicebus.windows.net)"
    )


# -- classification -----------------------------------------------------------------------


def test_classification_of_sdk_errors() -> None:
    assert is_fatal(ServiceBusError("wrapped", error=ClientAuthenticationError("no login")))
    assert not is_fatal(ServiceBusConnectionError(message="reset"))
    disabled = transient(MessagingEntityDisabledError(message="disabled"), 60.0)
    assert disabled.retry_after == 60.0
    timeout = transient(TimeoutError("no answer"), 60.0)
    assert timeout == Transient("TimeoutError: no answer")


def test_redaction_of_keys_and_signatures() -> None:
    config()  # the configured connection string and its key are registered for scrubbing
    text = describe(
        ValueError(f"bad {CONNECTION} and SharedAccessSignature sr=x&sig=abc%2Bdef&se=1")
    )
    assert KEY not in text and "abc%2Bdef" not in text
    assert text == "ValueError: bad ********** and SharedAccessSignature sr=x&sig=**********&se=1"
