"""How librdkafka errors map to route outcomes: retry, dead-letter, or stop."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from bridge.core import redact
from bridge.core.sink import Permanent, SinkFatalError, Transient
from sinks.kafka._errors import describe, fatal_reason, one_line, outcome

E = KafkaError


@pytest.mark.parametrize(
    "code",
    [
        E._MSG_TIMED_OUT,
        E._TRANSPORT,
        E._ALL_BROKERS_DOWN,
        E._TIMED_OUT,
        E._PURGE_QUEUE,
        E._PURGE_INFLIGHT,
        E._DESTROY,
        E.NOT_LEADER_FOR_PARTITION,  # NOT_LEADER_OR_FOLLOWER
        E.REQUEST_TIMED_OUT,
        E.NOT_ENOUGH_REPLICAS,
        E.LEADER_NOT_AVAILABLE,
        E.NETWORK_EXCEPTION,
        E.OUT_OF_ORDER_SEQUENCE_NUMBER,
        E.THROTTLING_QUOTA_EXCEEDED,
        E.UNKNOWN,  # unknown to us: retried, never dropped on a guess
    ],
)
def test_transient(code):
    result = outcome(KafkaError(code), "dicom")
    assert isinstance(result, Transient)
    assert result.reason.startswith(KafkaError(code).name() + ": ")
    assert result.reason.endswith("(topic dicom)")


def test_transient_reason_carries_the_context():
    result = outcome(KafkaError(E._MSG_TIMED_OUT), "dicom", context="last broker error: refused")
    assert result.reason == (
        "_MSG_TIMED_OUT: Local: Message timed out (topic dicom); last broker error: refused"
    )


@pytest.mark.parametrize(
    "code",
    [
        E.MSG_SIZE_TOO_LARGE,
        E.RECORD_LIST_TOO_LARGE,
        E.INVALID_RECORD,
        E.TOPIC_EXCEPTION,
        E.POLICY_VIOLATION,
        E._INVALID_ARG,
    ],
)
def test_permanent(code):
    result = outcome(KafkaError(code), "dicom")
    assert isinstance(result, Permanent)
    assert KafkaError(code).name() in result.reason


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (E._AUTHENTICATION, "authentication failed"),
        (E.SASL_AUTHENTICATION_FAILED, "authentication failed"),
        (E.TOPIC_AUTHORIZATION_FAILED, "not authorized to write to topic 'dicom'"),
        (E.CLUSTER_AUTHORIZATION_FAILED, "IDEMPOTENT_WRITE"),
        (E.UNKNOWN_TOPIC_OR_PART, "topic 'dicom' does not exist"),
        (E._UNKNOWN_TOPIC, "topic 'dicom' does not exist"),
        (E.UNSUPPORTED_COMPRESSION_TYPE, "refuses the producer's settings"),
    ],
)
def test_fatal(code, words):
    with pytest.raises(SinkFatalError, match=words) as failure:
        outcome(KafkaError(code), "dicom")
    assert "\n" not in str(failure.value)
    assert fatal_reason(KafkaError(code), "dicom") == str(failure.value)


def test_secrets_are_scrubbed_and_text_kept_on_one_line():
    redact.register("hunter2")  # as loading a config with this sasl.password does
    error = KafkaError(E._AUTHENTICATION, "SASL failed for password 'hunter2'\n(PLAIN)")
    assert describe(error) == "_AUTHENTICATION: SASL failed for password '**********' (PLAIN)"
    with pytest.raises(SinkFatalError) as failure:
        outcome(error, "dicom")
    assert "hunter2" not in str(failure.value)
    assert one_line("a b\tc") == "a b c"
