"""The Service Bus sink's config: one entity, one way to authenticate, secrets kept out."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError, parse_config
from bridge.config.docs import reference
from sinks._config import SinkConfig
from sinks.servicebus.config import Config

KEY = "c2VjcmV0LWtleS12YWx1ZQ=="
CONNECTION = (
    f"Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}"
)


def load(**sink) -> Config:
    text = (
        "feed: {url: http://h}\n"
        "sinks:\n"
        f"  - {{name: q, type: servicebus, {', '.join(f'{k}: {v!r}' for k, v in sink.items())}}}"
    )
    return parse_config(text).sinks[0]


def problems(**sink) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(**sink)
    return raised.value.lines


def test_connection_string_and_queue() -> None:
    config = load(connection_string=CONNECTION, queue="dicom-changes")
    assert config.connection_string.get_secret_value() == CONNECTION
    assert (config.entity, config.entity_kind) == ("dicom-changes", "queue")
    assert (config.sessions, config.time_to_live, config.max_batch_bytes) == (False, None, None)
    assert (config.send_timeout, config.quota_retry_after) == (30.0, 60.0)
    assert config.batch_size == 100 and config.format == "cloudevents"


def test_namespace_with_entra_options_and_topic() -> None:
    config = load(
        fully_qualified_namespace="sb://myns.servicebus.windows.net/",
        managed_identity_client_id="mi-1",
        topic="dicom",
        sessions=True,
        time_to_live="2h",
        max_batch_bytes="100KB",
        format="cloudevents-binary",
    )
    assert config.fully_qualified_namespace == "myns.servicebus.windows.net"
    assert (config.entity, config.entity_kind) == ("dicom", "topic")
    assert config.time_to_live == 7200.0
    assert config.max_batch_bytes == 100_000


def test_the_emulator_flag_is_accepted_in_any_case() -> None:
    emulator = "Endpoint=sb://localhost;SharedAccessKeyName=R;SharedAccessKey=K;"
    config = load(connection_string=emulator + "UseDevelopmentEmulator=True", queue="q")
    assert config.connection_text().endswith("UseDevelopmentEmulator=true")


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        (
            {"connection_string": CONNECTION},
            "sinks[0].queue: set exactly one of queue or topic",
        ),
        (
            {"connection_string": CONNECTION, "queue": "a", "topic": "b"},
            "sinks[0].queue: set exactly one of queue or topic",
        ),
        (
            {"queue": "a"},
            "sinks[0].connection_string: set exactly one of connection_string or "
            "fully_qualified_namespace",
        ),
        (
            {"connection_string": CONNECTION, "fully_qualified_namespace": "n", "queue": "a"},
            "sinks[0].connection_string: set exactly one of connection_string or "
            "fully_qualified_namespace",
        ),
        (
            {"connection_string": CONNECTION, "tenant_id": "t", "queue": "a"},
            "sinks[0].tenant_id: only with fully_qualified_namespace (Entra ID)",
        ),
        (
            {"fully_qualified_namespace": "n", "client_secret": "s", "queue": "a"},
            "sinks[0].client_secret: requires tenant_id and client_id",
        ),
        (
            {"fully_qualified_namespace": "n.servicebus.windows.net/q", "queue": "a"},
            "sinks[0].fully_qualified_namespace: expected a host such as "
            "myns.servicebus.windows.net, got 'n.servicebus.windows.net/q'",
        ),
        (
            {"connection_string": CONNECTION, "queue": "bad name"},
            "sinks[0].queue: invalid entity name 'bad name' (letters, digits, '.', '-', '_', "
            "'/'; up to 260 characters)",
        ),
        (
            {"connection_string": CONNECTION, "queue": "a", "max_batch_bytes": 10},
            "sinks[0].max_batch_bytes: must be at least 1024, got 10",
        ),
    ],
)
def test_invalid_settings_are_named(sink: dict, expected: str) -> None:
    assert expected in problems(**sink)


@pytest.mark.parametrize(
    "connection",
    [f"HostName=x;SharedAccessKey={KEY}", f"Endpoint=sb://x;SharedAccessKey={KEY}"],
)
def test_a_broken_connection_string_is_reported_without_its_value(connection: str) -> None:
    [problem] = problems(connection_string=connection, queue="q")
    assert problem.startswith("sinks[0].connection_string: ")
    assert KEY not in problem


def test_secrets_never_show() -> None:
    configs = [
        load(connection_string=CONNECTION, queue="q"),
        load(
            fully_qualified_namespace="n",
            tenant_id="t",
            client_id="c",
            client_secret=KEY,
            queue="q",
        ),
    ]
    for config in configs:
        for shown in (repr(config), str(config), config.model_dump_json()):
            assert KEY not in shown


def test_every_field_is_in_the_generated_reference() -> None:
    text = reference()
    section = text[text.index("#### Sink `type: servicebus`") :].split("\n#### ")[0]
    route_fields = set(SinkConfig.model_fields) - {"type"}  # documented once for every sink
    for field in set(Config.model_fields) - route_fields:
        assert f"| `{field}` |" in section
