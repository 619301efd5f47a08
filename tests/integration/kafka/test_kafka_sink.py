"""The Kafka sink against the mock cluster: records, failures and their classification."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import orjson
import pytest

from bridge.core.sink import DELIVERED, Permanent, SinkError, SinkFatalError, Transient
from sinks import create_sink
from tests.factories import events as make
from tests.integration.kafka.helpers import kafka_config, open_sink
from tests.peers.kafka_records import read_all


def by_key(records) -> dict[bytes, list]:
    grouped = defaultdict(list)
    for record in records:
        grouped[record.key].append(record)
    return grouped


def sequence_of(record) -> int:
    body = orjson.loads(record.value)
    return body.get("data", body)["sequence"]


async def test_records_are_keyed_by_study_and_keep_its_order(kafka, new_topic):
    topic = new_topic(6)
    events = make(300, studies=12)
    sink = await open_sink(kafka.bootstrap, topic, headers={"origin": "dicom-bridge"})
    try:
        assert await sink.send(events) == [DELIVERED] * 300
    finally:
        await sink.close()

    records = read_all(kafka.bootstrap, topic)
    assert sorted(map(sequence_of, records)) == list(range(1, 301))
    groups = by_key(records)
    assert set(groups) == {f"1.2.{n}".encode() for n in range(12)}
    for records_of_study in groups.values():
        assert len({record.partition for record in records_of_study}) == 1
        in_partition = sorted(records_of_study, key=lambda record: record.offset)
        assert [sequence_of(r) for r in in_partition] == sorted(map(sequence_of, in_partition))
    assert len({record.partition for record in records}) > 1  # studies spread out
    assert records[0].headers == [
        ("content-type", b"application/cloudevents+json; charset=UTF-8"),
        ("origin", b"dicom-bridge"),
    ]


@pytest.mark.parametrize(
    ("key", "expected"), [("series", b"1.2.3.1"), ("instance", b"1.2.3.1.3"), ("none", None)]
)
async def test_key_choice(kafka, new_topic, key, expected):
    topic = new_topic(1)
    sink = await open_sink(kafka.bootstrap, topic, key=key)
    try:
        assert await sink.send(make(1, first=3, fmt="raw")) == [DELIVERED]
    finally:
        await sink.close()
    [record] = read_all(kafka.bootstrap, topic)
    assert record.key == expected
    assert record.headers == [("content-type", b"application/json")]
    assert orjson.loads(record.value)["sequence"] == 3


async def test_templated_topic_routes_by_action(kafka, new_topic):
    prefix = new_topic(1)  # a unique prefix; the rendered topics are auto-created
    creates = make(3)
    deletes = make(2, first=10, action="Delete", state="Deleted")
    sink = await open_sink(kafka.bootstrap, prefix + ".{action}.{state}")
    try:
        assert await sink.send([*creates, *deletes]) == [DELIVERED] * 5
        line = await sink.check()
    finally:
        await sink.close()
    assert "reachable, 3 brokers (topic template not checked)" in line
    assert len(read_all(kafka.bootstrap, f"{prefix}.create.current")) == 3
    deleted = read_all(kafka.bootstrap, f"{prefix}.delete.deleted")
    assert sorted(map(sequence_of, deleted)) == [10, 11]


async def test_a_rendered_topic_kafka_would_refuse_is_permanent(kafka, new_topic):
    prefix = new_topic(1)
    [bad] = make(1, partitionName="has space")
    [good] = make(1, first=2)
    sink = await open_sink(kafka.bootstrap, prefix + ".{partition}")
    try:
        outcome, delivered = await sink.send([bad, good])
    finally:
        await sink.close()
    assert isinstance(outcome, Permanent)
    assert f"topic '{prefix}.has space' has characters other than" in outcome.reason
    assert delivered == DELIVERED


async def test_retriable_produce_errors_are_retried_without_duplicates(kafka, new_topic):
    topic = new_topic(6)
    for broker in (1, 2, 3):
        kafka.push_broker_errors(
            broker,
            "Produce",
            "NOT_LEADER_FOR_PARTITION",
            "REQUEST_TIMED_OUT",
            "NOT_ENOUGH_REPLICAS",
        )
    sink = await open_sink(kafka.bootstrap, topic)
    try:
        outcomes = await asyncio.gather(
            *(sink.send(make(50, first=1 + 50 * n, studies=12)) for n in range(4))
        )
    finally:
        await sink.close()
    assert [o for batch in outcomes for o in batch] == [DELIVERED] * 200
    assert [kafka.errors_left(broker, "Produce") for broker in (1, 2, 3)] == [0, 0, 0]
    records = read_all(kafka.bootstrap, topic)
    assert sorted(map(sequence_of, records)) == list(range(1, 201))  # each exactly once


async def test_delivery_timeout_is_transient_and_the_resend_succeeds(kafka, new_topic):
    topic = new_topic(6)
    sink = await open_sink(kafka.bootstrap, topic, producer={"message.timeout.ms": 300})
    try:
        kafka.set_down()
        outcomes = await sink.send(make(3))
        assert [type(o) for o in outcomes] == [Transient] * 3
        assert outcomes[0].reason.startswith("_MSG_TIMED_OUT: Local: Message timed out")
        assert "last broker error" in outcomes[0].reason
        kafka.set_up()
        deadline = time.monotonic() + 20
        while (outcomes := await sink.send(make(3))) != [DELIVERED] * 3:
            assert time.monotonic() < deadline, outcomes  # the producer reconnects
    finally:
        await sink.close()


async def test_oversize_records_are_permanent_with_the_reason(kafka, new_topic):
    topic = new_topic(1)
    [small] = make(1)
    [huge] = make(1, first=2, padding="x" * 5000)
    sink = await open_sink(kafka.bootstrap, topic, producer={"message.max.bytes": 4000})
    try:
        refused, delivered = await sink.send([huge, small])  # refused by the client
        leader = kafka.leader(topic)
        kafka.push_broker_errors(leader, "Produce", "MSG_SIZE_TOO_LARGE")  # by the broker
        [broker_refused] = await sink.send(make(1, first=3))
        assert await sink.send(make(1, first=4)) == [DELIVERED]
    finally:
        await sink.close()
    assert delivered == DELIVERED
    assert isinstance(refused, Permanent)
    assert refused.reason.startswith("MSG_SIZE_TOO_LARGE")
    assert isinstance(broker_refused, Permanent)
    assert broker_refused.reason.startswith("MSG_SIZE_TOO_LARGE: Broker: Message size too large")
    assert sorted(map(sequence_of, read_all(kafka.bootstrap, topic))) == [1, 4]


async def test_topic_authorization_failure_stops_the_route(kafka, new_topic):
    topic = new_topic(1)
    sink = await open_sink(kafka.bootstrap, topic)
    try:
        kafka.push_broker_errors(kafka.leader(topic), "Produce", "TOPIC_AUTHORIZATION_FAILED")
        with pytest.raises(SinkFatalError, match=f"not authorized to write to topic '{topic}'"):
            await sink.send(make(2))
    finally:
        await sink.close()


async def test_cluster_authorization_failure_for_idempotence_stops_the_route(kafka, new_topic):
    topic = new_topic(1)
    kafka.push_errors("InitProducerId", "CLUSTER_AUTHORIZATION_FAILED")
    sink = await open_sink(kafka.bootstrap, topic)
    try:
        with pytest.raises(SinkFatalError, match="IDEMPOTENT_WRITE"):
            for _ in range(50):  # the producer id is requested in the background
                await sink.send(make(1))
    finally:
        await sink.close()


async def test_unknown_topic_without_auto_creation_stops_at_open(kafka):
    with pytest.raises(SinkFatalError, match=r"topic 'dicom.absent' does not exist"):
        await open_sink(
            kafka.bootstrap, "dicom.absent", producer={"allow.auto.create.topics": False}
        )


async def test_a_fatal_producer_error_recreates_the_producer(kafka, new_topic):
    topic = new_topic(1)
    sink = await open_sink(kafka.bootstrap, topic)
    try:
        assert await sink.send(make(1)) == [DELIVERED]
        # the broker lost our sequence: idempotence is broken, the producer unusable
        kafka.push_broker_errors(kafka.leader(topic), "Produce", "OUT_OF_ORDER_SEQUENCE_NUMBER")
        failed = await sink.send(make(2, first=2))
        assert [type(o) for o in failed] == [Transient] * 2
        deadline = time.monotonic() + 20
        while (outcomes := await sink.send(make(2, first=2))) != [DELIVERED] * 2:
            assert all(isinstance(o, Transient) for o in outcomes)
            assert time.monotonic() < deadline, outcomes
    finally:
        await sink.close()
    assert set(map(sequence_of, read_all(kafka.bootstrap, topic))) == {1, 2, 3}


async def test_a_full_local_queue_is_backpressure_not_loss(kafka, new_topic):
    topic = new_topic(6)
    sink = await open_sink(kafka.bootstrap, topic, producer={"queue.buffering.max.messages": 5})
    try:
        assert await sink.send(make(400, studies=7)) == [DELIVERED] * 400
    finally:
        await sink.close()
    records = read_all(kafka.bootstrap, topic)
    assert sorted(map(sequence_of, records)) == list(range(1, 401))


async def test_close_is_bounded_and_reports_unacknowledged_records_transient(kafka, new_topic):
    topic = new_topic(1)
    sink = await open_sink(kafka.bootstrap, topic, close_timeout="300ms")
    kafka.set_down()
    sending = asyncio.create_task(sink.send(make(5)))
    deadline = time.monotonic() + 5
    while len(sink._client._producer) < 5:  # until the records wait in librdkafka
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    started = time.monotonic()
    await sink.close()
    assert time.monotonic() - started < 3
    outcomes = await asyncio.wait_for(sending, 5)
    assert [type(o) for o in outcomes] == [Transient] * 5


async def test_check_describes_the_topic_and_never_creates_one(kafka, new_topic):
    topic = new_topic(6)
    sink = await open_sink(kafka.bootstrap, topic)
    try:
        line = await sink.check()
    finally:
        await sink.close()
    assert line == f"kafka {kafka.bootstrap}: topic '{topic}' has 6 partitions, 3 brokers"

    missing = create_sink(kafka_config(kafka.bootstrap, "dicom.never.created"))
    with pytest.raises(SinkFatalError, match=r"'dicom\.never\.created' does not exist"):
        await missing.check()
    with pytest.raises(SinkFatalError, match="does not exist"):
        await missing.check()  # still missing: check did not create it


async def test_check_of_an_unreachable_bootstrap_is_one_line_and_prompt():
    sink = create_sink(kafka_config("127.0.0.1:1", "dicom.changes"))
    started = time.monotonic()
    with pytest.raises(SinkError) as failure:
        await sink.check()
    assert time.monotonic() - started < 5
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("kafka 127.0.0.1:1: unreachable (")
    assert "Connection refused" in message


async def test_a_send_waiting_for_downed_brokers_reports_the_sink_unreachable(kafka, new_topic):
    # Found by the chaos suite: with every broker down, records wait in librdkafka and the
    # send neither fails nor ends (for message.timeout.ms), so readiness said "ready".
    topic = new_topic(2)
    sink = await open_sink(kafka.bootstrap, topic, producer={"reconnect.backoff.max.ms": 200})
    try:
        assert await sink.send(make(3)) == [DELIVERED] * 3
        assert sink.unreachable is None
        kafka.set_down(-1)
        sending = asyncio.create_task(sink.send(make(3, first=4)))
        deadline = time.monotonic() + 30
        while sink.unreachable is None:
            assert time.monotonic() < deadline, "never reported unreachable"
            await asyncio.sleep(0.05)
        assert "every broker down" in sink.unreachable
        kafka.set_up(-1)
        assert await asyncio.wait_for(sending, 60) == [DELIVERED] * 3
        assert sink.unreachable is None
    finally:
        await sink.close()
