"""The config contract (README, Configuration): one `key.path: message` line per problem."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import BaseModel

from bridge.config import BridgeConfig, ConfigError, FeedConfig, load_config, parse_config
from bridge.config._env import expand_env
from bridge.core.configspec import parse_duration
from sinks import config_models

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
SINK = "{name: a, type: file, path: out/a.jsonl}"
VALID_TYPES = ", ".join(sorted(config_models()))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="c.yaml")
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


def config(feed: str = "{url: http://h}", sinks: str = f"[{SINK}]", extra: str = "") -> str:
    return f"feed: {feed}\nsinks: {sinks}\n{extra}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DICOM_FEED_URL", "OUT_PATH", "TOKEN", "EMPTY"):
        monkeypatch.delenv(name, raising=False)


MALFORMED = {
    "wrong type": (
        config(feed="{url: http://h, prefetch: many}"),
        "feed.prefetch: expected an integer, got 'many'",
    ),
    "wrong bool": (
        config(feed="{url: http://h, include_metadata: maybe}"),
        "feed.include_metadata: expected true or false, got 'maybe'",
    ),
    "section of the wrong kind": (
        config(sinks="{name: a}"),
        "sinks: expected a list, got a mapping",
    ),
    "unknown key with suggestion": (
        config(sinks="[{name: a, type: file, path: p, fsyncc: true}]"),
        "sinks[0].fsyncc: unknown key (did you mean 'fsync'?)",
    ),
    "unknown top-level key": (
        config(extra="offset: {path: x.db}\n"),
        "offset: unknown key (did you mean 'offsets'?)",
    ),
    "unknown key without a close match": (
        config(extra="offsets: {colour: blue}\n"),
        "offsets.colour: unknown key (valid keys: commit_interval, path, type)",
    ),
    "missing url": (config(feed="{api_version: v1}"), "feed.url: field required"),
    "missing sink field": (
        config(sinks="[{name: a, type: file}]"),
        "sinks[0].path: field required",
    ),
    "missing sink type": (
        config(sinks="[{name: a, path: p}]"),
        f"sinks[0].type: field required (valid types: {VALID_TYPES})",
    ),
    "bad duration": (
        config(feed="{url: http://h, poll_interval: 5 parsecs}"),
        "feed.poll_interval: invalid duration '5 parsecs' (use e.g. 250ms, 5s, 2m)",
    ),
    "negative duration": (
        config(feed="{url: http://h, timeout: -1s}"),
        "feed.timeout: invalid duration '-1s' (must not be negative)",
    ),
    "zero poll interval": (
        config(feed="{url: http://h, poll_interval: 0s}"),
        "feed.poll_interval: must be greater than 0, got 0",
    ),
    "retry max below initial": (
        config(sinks="[{name: a, type: stdout, retry: {initial: 5s, max: 1s}}]"),
        "sinks[0].retry.max: must not be less than initial (5s)",
    ),
    "duplicate sink names": (
        config(sinks=f"[{SINK}, {{name: b, type: stdout}}, {{name: a, type: stdout}}]"),
        "sinks[2].name: duplicate sink name 'a' (also sinks[0])",
    ),
    "bad sink name": (
        config(sinks="[{name: 'a b', type: stdout}]"),
        "sinks[0].name: must match ^[A-Za-z0-9_.-]+$, got 'a b'",
    ),
    "unknown sink type": (
        config(sinks="[{name: a, type: carrier-pigeon}]"),
        f"sinks[0].type: unknown type 'carrier-pigeon' (valid types: {VALID_TYPES})",
    ),
    "unknown auth type with suggestion": (
        config(feed="{url: http://h, auth: {type: barer}}"),
        "feed.auth.type: unknown type 'barer' (did you mean 'bearer'? valid types: "
        "azure, bearer, none)",
    ),
    "unknown offsets type": (
        config(extra="offsets: {type: redis}\n"),
        "offsets.type: unknown type 'redis' (valid types: azure_blob, postgres, sqlite)",
    ),
    "url with version segment": (
        config(feed="{url: 'https://h.example/v2/'}"),
        "feed.url: must be the service's base URL, without '/v2' (api_version selects the "
        "version): use 'https://h.example'",
    ),
    "url of the change feed itself": (
        config(feed="{url: 'http://h:8080/dicom/v1/changefeed'}"),
        "feed.url: must be the service's base URL, without '/v1/changefeed' (api_version "
        "selects the version): use 'http://h:8080/dicom'",
    ),
    "url without scheme": (
        config(feed="{url: h.example}"),
        "feed.url: invalid URL 'h.example' (expected http(s)://host[:port][/path])",
    ),
    "page_size out of range for v1": (
        config(feed="{url: http://h, page_size: 150}"),
        "feed.page_size: must be between 1 and 100 for api_version v1, got 150",
    ),
    "page_size out of range for v2": (
        config(feed="{url: http://h, api_version: v2, page_size: 201}"),
        "feed.page_size: must be between 1 and 200 for api_version v2, got 201",
    ),
    "bad api_version": (
        config(feed="{url: http://h, api_version: v3}"),
        "feed.api_version: must be 'v1' or 'v2', got 'v3'",
    ),
    "bearer with token and token_file": (
        config(feed="{url: http://h, auth: {type: bearer, token: t, token_file: /run/t}}"),
        "feed.auth: set either token or token_file, not both",
    ),
    "bearer without token": (
        config(feed="{url: http://h, auth: {type: bearer}}"),
        "feed.auth: token or token_file is required",
    ),
    "azure secret without client": (
        config(feed="{url: http://h, auth: {type: azure, client_secret: s}}"),
        "feed.auth.client_secret: requires tenant_id and client_id",
    ),
    "nested dead_letter": (
        config(
            sinks="[{name: a, type: stdout, dead_letter: {type: file, path: d.jsonl, "
            "dead_letter: {type: stdout}}}]"
        ),
        "sinks[0].dead_letter.dead_letter: a dead_letter target cannot have a dead_letter",
    ),
    "error inside dead_letter": (
        config(sinks="[{name: a, type: stdout, dead_letter: {type: file}}]"),
        "sinks[0].dead_letter.path: field required",
    ),
    "unknown filter action": (
        config(sinks="[{name: a, type: stdout, filter: {actions: [Create, Crete]}}]"),
        "sinks[0].filter.actions[1]: unknown action 'Crete' (valid: Create, Update, Delete)",
    ),
    "max_pending below batch_size": (
        config(sinks="[{name: a, type: stdout, batch_size: 500, max_pending: 100}]"),
        "sinks[0].max_pending: must be at least batch_size (500)",
    ),
    "rotate_bytes garbage": (
        config(sinks="[{name: a, type: file, path: p, rotate_bytes: lots}]"),
        "sinks[0].rotate_bytes: could not parse value and unit from byte string",
    ),
    "empty sinks": (config(sinks="[]"), "sinks: at least one sink is required"),
    "no sinks": ("feed: {url: http://h}\n", "sinks: field required"),
    "bad http.listen": (
        config(extra="http: {listen: localhost}\n"),
        "http.listen: invalid address 'localhost' (use host:port, e.g. 127.0.0.1:9464)",
    ),
    "top level not a mapping": ("- feed\n", "(top level): expected a mapping, got a list"),
    "yaml syntax error": (
        "feed:\n  url: http://h\n  bad\nsinks: []\n",
        "c.yaml:4:1: could not find expected ':'",
    ),
    "yaml duplicate key": (
        "feed: {url: http://h}\nsinks: []\nfeed: {url: http://i}\n",
        "c.yaml:3:1: duplicate key 'feed'",
    ),
    "unset env var": (
        config(sinks="[{name: a, type: file, path: '${OUT_PATH}'}]"),
        "sinks[0].path: environment variable OUT_PATH is not set",
    ),
    "bad env reference": (
        config(sinks="[{name: a, type: file, path: 'out/${OUT PATH}'}]"),
        "sinks[0].path: invalid reference '${OUT PATH}' (use ${NAME} or ${NAME:-default}, "
        "and $${ for a literal ${)",
    ),
}


@pytest.mark.parametrize(("text", "expected"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_config_gives_one_exact_line(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_all_problems_are_reported_at_once() -> None:
    lines = problems(
        config(
            feed="{url: 'http://h/v1', poll_interval: soon}",
            sinks="[{name: a, type: file}, {name: b, type: stdout, formt: raw}]",
        )
    )
    assert lines == [
        "feed.url: must be the service's base URL, without '/v1' (api_version selects the "
        "version): use 'http://h'",
        "feed.poll_interval: invalid duration 'soon' (use e.g. 250ms, 5s, 2m)",
        "sinks[0].path: field required",
        "sinks[1].formt: unknown key (did you mean 'format'?)",
    ]


def test_messages_carry_no_pydantic_noise() -> None:
    text = "\n".join(problems(config(feed="{url: 5, prefetch: [1], auth: {type: 2}}")))
    for noise in ("pydantic", "https://errors", "Input should", "Traceback", "Value error"):
        assert noise not in text


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines == [f"{path}: No such file or directory (ENOENT)"]


def test_load_config_names_the_file_in_syntax_errors(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text("feed: {url: http://h\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines == [f"{path}:2:1: expected ',' or '}}', but got '<stream end>'"]


def test_defaults() -> None:
    loaded = parse_config(config())
    feed = loaded.feed
    assert (feed.url, feed.api_version, feed.page_size, feed.include_metadata) == (
        "http://h",
        "v1",
        100,
        False,
    )
    assert (feed.poll_interval, feed.safety_lag, feed.timeout, feed.prefetch) == (5, 60, 30, 8)
    assert feed.http_helper is True
    assert (feed.retry.initial, feed.retry.max, feed.metadata_retries) == (0.2, 30, 3)
    assert feed.auth.type == "none"
    assert loaded.offsets.type == "sqlite"
    assert loaded.offsets.path == Path("state/offsets.db")
    assert loaded.http is None
    assert (loaded.drain_timeout, loaded.offsets.commit_interval) == (10, 1)
    sink = loaded.sinks[0]
    assert (sink.format, sink.batch_size, sink.max_in_flight, sink.max_pending) == (
        "cloudevents",
        100,
        8,
        10000,
    )
    assert (sink.fsync, sink.rotate_bytes, sink.dead_letter) == (True, None, None)
    assert sink.filter.actions == sink.filter.states == sink.filter.partitions == []


def test_v2_defaults_and_limits() -> None:
    assert parse_config(config(feed="{url: http://h, api_version: v2}")).feed.page_size == 200
    assert parse_config(config(feed="{url: http://h, api_version: v2, page_size: 200}"))


def test_normalisation() -> None:
    loaded = parse_config(
        config(
            feed="{url: 'HTTPS://h.example:8443/dicom/', auth: {type: azure}}",
            sinks="[{name: a, type: stdout, filter: {actions: [create, DELETE], "
            "states: [current]}, dead_letter: {type: file, path: d.jsonl}}, "
            "{name: b, type: file, path: p, rotate_bytes: 1MB}]",
            extra="http: {listen: '[::1]:0'}\noffsets: {path: s/o.db}\n",
        )
    )
    assert loaded.feed.url == "https://h.example:8443/dicom"
    assert loaded.feed.auth.scope == "https://dicom.healthcareapis.azure.com/.default"
    assert loaded.sinks[0].filter.actions == ["Create", "Delete"]
    assert loaded.sinks[0].filter.states == ["Current"]
    assert loaded.sinks[0].dead_letter.name == "a.dead_letter"
    assert loaded.sinks[0].dead_letter.path == Path("d.jsonl")
    assert loaded.sinks[1].rotate_bytes == 1_000_000
    assert (loaded.http.host, loaded.http.port) == ("::1", 0)
    assert loaded.offsets.path == Path("s/o.db")


def test_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    text = config(
        feed="{url: '${DICOM_FEED_URL:-http://default:8080}', page_size: '${PAGE:-50}'}",
        sinks="[{name: a, type: file, path: '${OUT_PATH}/$${HOME}/${EMPTY:-e}.jsonl'}]",
    )
    monkeypatch.setenv("OUT_PATH", "/data/${TOKEN}")  # a value is never expanded again
    monkeypatch.setenv("EMPTY", "")  # set but empty: `:-` takes the default, like the shell
    loaded = parse_config(text)
    assert loaded.feed.url == "http://default:8080"
    assert loaded.feed.page_size == 50
    assert loaded.sinks[0].path == Path("/data/${TOKEN}/${HOME}/e.jsonl")

    monkeypatch.setenv("DICOM_FEED_URL", "https://from.env")
    assert parse_config(text).feed.url == "https://from.env"


def test_env_expansion_leaves_keys_and_lone_dollars_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "abc")
    loaded = parse_config(
        config(feed="{url: http://h, auth: {type: bearer, token: 'p$w${TOKEN}$'}}")
    )
    assert loaded.feed.auth.token.get_secret_value() == "p$wabc$"


@given(st.text())
def test_text_without_references_is_left_alone(text: str) -> None:
    assume("${" not in text)
    assert expand_env({"key": [text]}, {}) == ({"key": [text]}, [])


@given(st.integers(min_value=0, max_value=10**9))
def test_millisecond_durations(milliseconds: int) -> None:
    assert parse_duration(f"{milliseconds}ms") == pytest.approx(milliseconds / 1000)


def test_unset_variables_are_all_reported_with_other_errors() -> None:
    lines = problems(
        config(
            feed="{url: '${DICOM_FEED_URL}', prefetch: 0}",
            sinks="[{name: a, type: file, path: '${OUT_PATH}'}]",
        )
    )
    assert lines == [
        "feed.url: environment variable DICOM_FEED_URL is not set",
        "sinks[0].path: environment variable OUT_PATH is not set",
        "feed.prefetch: must be at least 1, got 0",
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        (" 10 ", 10.0),
        ("0", 0.0),
        (3, 3.0),
        (0.5, 0.5),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["-1s", -1, "5 parsecs", "", "s", "1d", "1 h 2 m", True, None, "nan", math.inf]
)
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


SECRET = "s3cr3t-Value-42"


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", SECRET)
    loaded = parse_config(config(feed="{url: http://h, auth: {type: bearer, token: '${TOKEN}'}}"))
    assert loaded.feed.auth.token.get_secret_value() == SECRET
    azure = parse_config(
        config(
            feed=f"{{url: http://h, auth: {{type: azure, tenant_id: t, client_id: c, "
            f"client_secret: {SECRET}}}}}"
        )
    )
    for shown in (
        repr(loaded),
        str(loaded),
        loaded.model_dump_json(),
        repr(azure),
        azure.model_dump_json(),
        str(azure.model_dump()),
    ):
        assert SECRET not in shown


@pytest.mark.parametrize(
    "feed",
    [
        "{url: http://h, auth: {type: bearer, token: [" + SECRET + "]}}",
        "{url: http://h, auth: {type: bearer, token: 12345678987}}",
        "{url: http://h, auth: {type: azure, client_secret: " + SECRET + "}}",
        "{url: http://h, auth: {type: azure, client_secret: " + SECRET + ", tokn: 1}}",
        "{url: http://h, auth: {type: bearer, token: " + SECRET + ", token_file: /t}}",
    ],
)
def test_secret_values_stay_out_of_errors(feed: str) -> None:
    text = "\n".join(problems(config(feed=feed)))
    assert SECRET not in text
    assert "12345678987" not in text


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda path: path.name)
def test_example_configs_load(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOM_FEED_URL", "https://myws-mydicom.dicom.azurehealthcareapis.com")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "kafka-1:9093")
    monkeypatch.setenv("KAFKA_PASSWORD", "password")
    monkeypatch.setenv(
        "SERVICEBUS_CONNECTION_STRING",
        "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=a2V5",
    )
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    monkeypatch.setenv("PGPASSWORD", "pg-password")
    for name in ("REDIS_PASSWORD", "NATS_PASSWORD", "RABBITMQ_PASSWORD"):
        monkeypatch.setenv(name, "password")
    assert isinstance(load_config(path), BridgeConfig)


def test_quickstart_works_without_any_environment() -> None:
    assert "DICOM_FEED_URL" not in os.environ
    loaded = load_config(CONFIG_DIR / "quickstart.yaml")
    assert loaded.feed.url == "http://127.0.0.1:8080"
    assert loaded.feed.poll_interval == 1.0
    assert [(sink.name, sink.type, sink.path) for sink in loaded.sinks] == [
        ("archive", "file", Path("out/events.jsonl"))
    ]


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for nested in _nested_models(field.annotation):
            _models(nested, seen)


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in getattr(annotation, "__args__", ()) for model in _nested_models(arg)]


def test_every_field_is_documented() -> None:
    """Docs are generated from the models: a field without a description is a doc hole."""
    seen: set[type[BaseModel]] = set()
    for model in (BridgeConfig, FeedConfig, *config_models().values()):
        _models(model, seen)
    undocumented = [
        f"{model.__name__}.{name}"
        for model in seen
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undocumented == []
