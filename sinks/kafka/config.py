"""Config of the Kafka sink.

Any librdkafka producer property can be given under `producer:` (as Debezium Server's
`debezium.sink.kafka.producer.*` does); the bridge's own defaults are safe ones for
at-least-once delivery in study order. Values of secret-looking properties become
`Secret`s at validation, so they are masked in every repr, dump, error message and log;
`producer_file` reads any property from a file (read again when the producer is created).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from bridge.core.configspec import Duration, error_at
from bridge.core.secret import Secret, clean
from sinks._config import SinkConfig
from sinks._template import TEMPLATE_FIELDS, TEMPLATE_HELP, template_text

#: Template fields of `topic`, rendered from the entry (see `sinks._template`).
TOPIC_FIELDS = TEMPLATE_FIELDS

#: Producer properties the bridge sets unless `producer:` overrides them.
PRODUCER_DEFAULTS: dict[str, str] = {
    "enable.idempotence": "true",
    "acks": "all",
    "linger.ms": "5",
    "partitioner": "murmur2_random",
    "message.timeout.ms": "120000",
    "log.connection.close": "false",
    # librdkafka would buffer up to 1 GB of records in memory ahead of slow brokers; the
    # route's own queue is the buffer that counts, so a full local queue is backpressure.
    "queue.buffering.max.kbytes": "65536",
}

#: Properties that cannot come from `producer:` (set elsewhere, or callbacks of the bridge).
_RESERVED = {
    "bootstrap.servers": "use bootstrap_servers",
    "metadata.broker.list": "use bootstrap_servers",
    "transactional.id": "transactions are not supported by this sink",
    "delivery.report.only.error": "the sink needs every delivery report",
    "on_delivery": "set by the bridge",
    "dr_cb": "set by the bridge",
    "dr_msg_cb": "set by the bridge",
    "error_cb": "set by the bridge",
    "logger": "set by the bridge",
    "stats_cb": "not supported",
    "throttle_cb": "not supported",
    "oauth_cb": "not supported",
}

_SECRET_PROPERTY = re.compile(
    r"password|secret|passphrase|private\.key|key\.pem|jaas|oauthbearer\.(config|extensions)",
    re.IGNORECASE,
)
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]*")
MAX_TOPIC_LENGTH = 249

ProducerValue = str | int | float | bool | Secret  # smart union: a str stays a str


def is_secret_property(name: str) -> bool:
    """Whether a librdkafka property holds a secret (its value is masked everywhere)."""
    return bool(_SECRET_PROPERTY.search(name))


def invalid_topic_reason(name: str) -> str | None:
    """Why `name` is not a legal Kafka topic name, or None if it is."""
    if not name:
        return "empty topic name"
    if len(name) > MAX_TOPIC_LENGTH:
        return f"topic name longer than {MAX_TOPIC_LENGTH} characters"
    if name in (".", ".."):
        return f"{name!r} is not a valid topic name"
    if not _TOPIC_CHARS.fullmatch(name):
        return f"topic {name!r} has characters other than letters, digits, '.', '_' and '-'"
    return None


class Config(SinkConfig):
    """Produce each event as one Kafka record through an idempotent producer (acks=all),
    keyed by the StudyInstanceUID so that a study's changes stay in one partition, in order."""

    supports_binary: ClassVar[bool] = True

    type: Literal["kafka"] = Field(description="Sink type.")
    bootstrap_servers: str = Field(
        description="Comma-separated host:port list of brokers to bootstrap from, e.g. "
        "kafka-1:9092,kafka-2:9092 (Azure Event Hubs: <namespace>.servicebus.windows.net:9093)."
    )
    topic: str = Field(
        description=f"Topic of every record, or a template over the entry: {TEMPLATE_HELP}, "
        "e.g. dicom.{action}. The bridge does not create topics (a broker with "
        "auto.create.topics.enable does, on first use)."
    )
    key: Literal["study", "series", "instance", "none"] = Field(
        "study",
        description="Record key: the StudyInstanceUID (a study's changes land in one "
        "partition, in feed order), the SeriesInstanceUID, the SOPInstanceUID, or none "
        "(records spread over partitions; no order between them).",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Static headers added to every record (UTF-8 values); names cannot be "
        "content-type or start with ce_ (the sink sets those).",
    )
    producer: dict[str, ProducerValue] = Field(
        default_factory=dict,
        description="librdkafka producer properties passed through as is (security.protocol, "
        "sasl.mechanism, sasl.username, sasl.password, ssl.ca.location, compression.type, "
        "linger.ms, ...); they override the bridge's defaults: enable.idempotence=true, "
        "acks=all, linger.ms=5, partitioner=murmur2_random (the Java client's key "
        "hashing), message.timeout.ms=120000, log.connection.close=false, "
        "queue.buffering.max.kbytes=65536. Values of secret "
        "properties (names with password, secret, passphrase, private.key, key.pem, jaas) are "
        "masked everywhere.",
    )
    close_timeout: Duration = Field(
        "5s",
        validate_default=True,
        description="On shutdown, how long records still queued in the producer may take to "
        "be acknowledged (only records the route's drain gave up on are left by then); "
        "events not acknowledged are sent again after a restart.",
    )

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _server_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = ",".join(str(server) for server in value)
        if isinstance(value, str):
            servers = [server.strip() for server in value.split(",") if server.strip()]
            if not servers:
                raise ValueError("at least one host:port is required")
            return ",".join(servers)
        return value

    @field_validator("topic")
    @classmethod
    def _topic_template(cls, value: str) -> str:
        text, templated = template_text(value, "topic")
        if not templated:
            reason = invalid_topic_reason(value)
            if reason is not None:
                raise ValueError(reason)
            return value
        if not _TOPIC_CHARS.fullmatch(text) or len(text) >= MAX_TOPIC_LENGTH:
            raise ValueError(
                f"topic template {value!r}: only letters, digits, '.', '_' and '-' around "
                f"the fields, at most {MAX_TOPIC_LENGTH} characters"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            lowered = name.lower()
            if not name or lowered == "content-type" or lowered.startswith("ce_"):
                raise ValueError(f"header {name!r} is set by the sink; choose another name")
        return value

    @field_validator("producer", mode="before")
    @classmethod
    def _producer_properties(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        properties = {}
        for name, setting in value.items():
            if not isinstance(name, str):
                raise ValueError(f"property names are strings, got {name!r}")
            if name in _RESERVED:
                raise ValueError(f"{name} cannot be set here: {_RESERVED[name]}")
            if is_secret_property(name) and isinstance(setting, str | int | float):
                try:
                    setting = Secret(clean(str(setting)))
                except ValueError as exc:
                    raise error_at(name, message=str(exc)) from None
            properties[name] = setting
        return properties

    @property
    def where(self) -> str:
        return f"{self.bootstrap_servers} topic {self.topic}"

    @property
    def topic_is_template(self) -> bool:
        return template_text(self.topic, "topic")[1]

    def librdkafka_properties(self, client_id: str) -> dict[str, str]:
        """The producer's configuration, secrets revealed: never log or show it."""
        properties = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": client_id,
            **PRODUCER_DEFAULTS,
        }
        for name, value in self.producer.items():
            properties[name] = _property_text(value)
        return properties


def _property_text(value: ProducerValue) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
