"""What a librdkafka error means for the route: retry, dead-letter, or stop.

- The sink cannot go on (`SinkFatalError`, one line; the route stops and keeps its
  cursor): authentication (SASL) failures, authorization failures (topic, cluster: the
  idempotent producer needs IDEMPOTENT_WRITE), an unknown topic (the broker does not
  create it), a compression type or message format the broker does not support. Every
  record would fail the same way, so dead-lettering them would only empty the feed into
  the dead-letter target.
- This record can never be written (`Permanent`, dead-lettered with the reason): too
  large (MSG_SIZE_TOO_LARGE, RECORD_LIST_TOO_LARGE), an invalid record or timestamp, a
  topic name the broker refuses (TOPIC_EXCEPTION), a policy violation.
- Everything else is `Transient`: delivery timeouts (`_MSG_TIMED_OUT`), broker or network
  unavailability (`_TRANSPORT`, `_ALL_BROKERS_DOWN`), retriable broker errors that outlived
  librdkafka's own retries (NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT,
  NOT_ENOUGH_REPLICAS, ...), purged messages, and errors not known here: the route retries
  them with backoff and logs each retry with its reason, and never skips an event on a
  guess (as Kafka Connect does with `errors.tolerance=none`, minus the task crash).
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from bridge.core.redact import scrub
from bridge.core.sink import Outcome, Permanent, SinkFatalError, Transient

E = KafkaError

AUTHENTICATION = frozenset(
    {
        E._AUTHENTICATION,
        E.SASL_AUTHENTICATION_FAILED,
        E.UNSUPPORTED_SASL_MECHANISM,
        E.ILLEGAL_SASL_STATE,
    }
)
AUTHORIZATION = frozenset(
    {
        E.TOPIC_AUTHORIZATION_FAILED,
        E.CLUSTER_AUTHORIZATION_FAILED,
        E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)
UNKNOWN_TOPIC = frozenset({E._UNKNOWN_TOPIC, E.UNKNOWN_TOPIC_OR_PART})
UNSUPPORTED = frozenset(
    {E.UNSUPPORTED_COMPRESSION_TYPE, E.UNSUPPORTED_FOR_MESSAGE_FORMAT, E._UNSUPPORTED_FEATURE}
)
PERMANENT = frozenset(
    {
        E.MSG_SIZE_TOO_LARGE,
        E.RECORD_LIST_TOO_LARGE,
        E.INVALID_MSG_SIZE,
        E.INVALID_RECORD,
        E.INVALID_TIMESTAMP,
        E.TOPIC_EXCEPTION,
        E.POLICY_VIOLATION,
        E._INVALID_ARG,
        E._BAD_MSG,
    }
)


def error_of(exc: KafkaException) -> KafkaError:
    """The KafkaError a KafkaException carries (librdkafka always gives one)."""
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else KafkaError(KafkaError._FAIL, str(exc))


def describe(error: KafkaError) -> str:
    """`NAME: text` with any secret value masked (librdkafka may quote property values)."""
    return one_line(f"{error.name()}: {error.str()}")


def one_line(text: str) -> str:
    """librdkafka's `text` on one line, secrets masked."""
    return " ".join(scrub(text).split())


def fatal_reason(error: KafkaError, topic: str | None) -> str | None:
    """The one line a route stops with when `error` makes the sink unusable, else None."""
    code = error.code()
    where = f"topic {topic!r}" if topic else "the topic"
    if code in AUTHENTICATION:
        return f"kafka: authentication failed ({describe(error)})"
    if code == E.CLUSTER_AUTHORIZATION_FAILED:
        return (
            f"kafka: not authorized on the cluster ({describe(error)}); the "
            "idempotent producer needs the IDEMPOTENT_WRITE permission"
        )
    if code in AUTHORIZATION:
        return f"kafka: not authorized to write to {where} ({describe(error)})"
    if code in UNKNOWN_TOPIC:
        return (
            f"kafka: {where} does not exist ({error.name()}); create it (or let the broker "
            "create topics automatically)"
        )
    if code in UNSUPPORTED:
        return f"kafka: the broker refuses the producer's settings ({describe(error)})"
    return None


def outcome(error: KafkaError, topic: str | None, context: str = "") -> Outcome:
    """A failed delivery's outcome; raises SinkFatalError when the sink cannot go on.
    `context` (e.g. the last broker error seen) is appended to transient reasons."""
    reason = fatal_reason(error, topic)
    if reason is not None:
        raise SinkFatalError(reason)
    text = describe(error)
    if topic:
        text += f" (topic {topic})"
    if error.code() in PERMANENT:
        return Permanent(text)
    return Transient(f"{text}; {context}" if context else text)
