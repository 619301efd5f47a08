"""The Kafka sink's config: validation, defaults, and secrets kept out of sight."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError, parse_config
from bridge.core import redact
from sinks.kafka.config import PRODUCER_DEFAULTS, Config

BASE = {"name": "events", "type": "kafka", "bootstrap_servers": "k1:9092", "topic": "dicom"}


def config(**options) -> Config:
    return Config(**{**BASE, **options})


def test_minimal_config_gets_safe_producer_defaults():
    properties = config().librdkafka_properties("dicom-bridge.events")
    assert properties == {
        "bootstrap.servers": "k1:9092",
        "client.id": "dicom-bridge.events",
        **PRODUCER_DEFAULTS,
    }
    assert properties["enable.idempotence"] == "true" and properties["acks"] == "all"
    assert config().key == "study" and config().format == "cloudevents"


def test_producer_properties_pass_through_and_override_defaults():
    properties = config(
        producer={"linger.ms": 50, "compression.type": "lz4", "enable.idempotence": False}
    ).librdkafka_properties("x")
    assert properties["linger.ms"] == "50"
    assert properties["compression.type"] == "lz4"
    assert properties["enable.idempotence"] == "false"


def test_bootstrap_servers_accept_a_list_and_trim_spaces():
    assert config(bootstrap_servers=["k1:9092", " k2:9092"]).bootstrap_servers == "k1:9092,k2:9092"
    assert config(bootstrap_servers=" k1:9092 , k2:9092,").bootstrap_servers == "k1:9092,k2:9092"
    with pytest.raises(ValueError, match="at least one host:port"):
        config(bootstrap_servers=" , ")


@pytest.mark.parametrize(
    "secret",
    [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "ssl.key.pem",
        "sasl.oauthbearer.config",
    ],
)
def test_secret_properties_are_masked_everywhere_but_in_the_producer(secret):
    model = config(producer={secret: "hunter2-secret-value", "sasl.username": "bridge"})
    assert "hunter2" not in repr(model)
    assert "hunter2" not in str(model.model_dump())
    assert "hunter2" not in model.model_dump_json()
    assert model.librdkafka_properties("x")[secret] == "hunter2-secret-value"
    assert model.librdkafka_properties("x")["sasl.username"] == "bridge"
    assert redact.scrub("echo hunter2-secret-value") == "echo **********"


def test_an_event_hubs_connection_string_from_the_environment_stays_secret(monkeypatch):
    monkeypatch.setenv("EH_CONN", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=abc")
    bridge = parse_config(
        """
feed: {url: "http://dicom"}
sinks:
  - name: hub
    type: kafka
    bootstrap_servers: ns.servicebus.windows.net:9093
    topic: dicom-changes
    producer:
      security.protocol: SASL_SSL
      sasl.mechanism: PLAIN
      sasl.username: $ConnectionString
      sasl.password: ${EH_CONN}
"""
    )
    [sink] = bridge.sinks
    assert "SharedAccessKey" not in repr(bridge)
    properties = sink.librdkafka_properties("x")
    assert properties["sasl.username"] == "$ConnectionString"
    assert properties["sasl.password"].endswith("SharedAccessKey=abc")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("bootstrap.servers", "use bootstrap_servers"),
        ("transactional.id", "not supported"),
        ("delivery.report.only.error", "every delivery report"),
        ("error_cb", "set by the bridge"),
    ],
)
def test_reserved_producer_properties_are_refused(name, hint):
    with pytest.raises(ValueError, match=hint):
        config(producer={name: "x"})


def test_a_refused_secret_value_is_not_echoed():
    with pytest.raises(ConfigError) as failure:
        parse_config(
            "feed: {url: 'http://dicom'}\nsinks:\n  - {name: e, type: kafka, "
            "bootstrap_servers: k, topic: t, producer: {sasl.password: [hunter2]}}\n"
        )
    assert "hunter2" not in str(failure.value)


@pytest.mark.parametrize(
    "topic",
    ["dicom.changes", "dicom.{action}", "dicom.{partition}.{state}", "{type}", "x-{study}_{sop}"],
)
def test_valid_topics_and_templates(topic):
    assert config(topic=topic).topic == topic


def test_template_detection():
    assert not config(topic="dicom.changes").topic_is_template
    assert config(topic="dicom.{action}").topic_is_template


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("dicom.{modality}", "unsupported template field"),
        ("dicom.{action!r}", "unsupported template field"),
        ("dicom.{action:>10}", "unsupported template field"),
        ("dicom.{action", "invalid topic template"),
        ("dicom changes", "characters other than"),
        ("dicom/{action}", "only letters, digits"),
        ("..", "not a valid topic name"),
        ("", "empty topic name"),
        ("x" * 250, "longer than 249"),
    ],
)
def test_invalid_topics_are_config_errors(topic, message):
    with pytest.raises(ValueError, match=message):
        config(topic=topic)


@pytest.mark.parametrize("name", ["content-type", "Content-Type", "ce_id", "CE_type"])
def test_headers_the_sink_sets_cannot_be_configured(name):
    with pytest.raises(ValueError, match="set by the sink"):
        config(headers={name: "x"})


def test_binary_format_is_allowed_and_unknown_keys_are_refused():
    assert config(format="cloudevents-binary").format == "cloudevents-binary"
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.topik"):
        parse_config(
            "feed: {url: 'http://dicom'}\nsinks:\n  - {name: e, type: kafka, "
            "bootstrap_servers: k, topik: t}\n"
        )
