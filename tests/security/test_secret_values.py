"""Secret values as the config loads them: surrounding whitespace stripped (inline, `${VAR}`
or from a file), any other control character refused without echoing the value, and every
secret field readable from a file instead (`<field>_file`, as Kubernetes mounts secrets),
re-read when the file changes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from bridge.config import BridgeConfig, ConfigError, FeedConfig, parse_config
from bridge.config._errors import is_secret
from bridge.core.configspec import secret_fields
from bridge.core.secret import Secret
from sinks import config_models
from tests.security import canaries

README = Path(__file__).resolve().parents[2] / "README.md"
FEED = "http://127.0.0.1:9"
IDS = {"tenant_id": "t", "client_id": "c"}
FILE_SINK = {"name": "a", "type": "file", "path": "out/a.jsonl"}
WEBHOOK = {"type": "webhook", "url": "http://127.0.0.1:9/hooks"}
QUEUE = {"type": "servicebus", "queue": "q"}
KAFKA = {"type": "kafka", "bootstrap_servers": "127.0.0.1:9", "topic": "t"}
CONNECTION_STRING = canaries.servicebus_connection_string("127.0.0.1:9", emulator=False)

Build = Callable[[str, Any], dict[str, Any]]  # (key suffix: "" or "_file", value) -> config


def feed_auth(auth: dict[str, Any]) -> dict[str, Any]:
    return {"feed": {"url": FEED, "auth": auth}, "sinks": [FILE_SINK]}


def sink(**settings: Any) -> dict[str, Any]:
    return {"feed": {"url": FEED}, "sinks": [{"name": "s", **settings}]}


def text(value: Any) -> str:
    """A secret's value (a list of secrets, as older configs held them, joined by spaces)."""
    if isinstance(value, list):
        return " ".join(item.get_secret_value() for item in value)
    return value.get_secret_value()


# name: (value, config builder, where it is reported, how to read it back)
PLACES: dict[str, tuple[str, Build, str, Callable[[BridgeConfig], Any]]] = {
    "feed token": (
        canaries.FEED_TOKEN.value,
        lambda s, v: feed_auth({"type": "bearer", f"token{s}": v}),
        "feed.auth.token",
        lambda c: c.feed.auth.token,
    ),
    "feed client_secret": (
        canaries.FEED_CLIENT_SECRET.value,
        lambda s, v: feed_auth({"type": "azure", **IDS, f"client_secret{s}": v}),
        "feed.auth.client_secret",
        lambda c: c.feed.auth.client_secret,
    ),
    "webhook secret": (
        canaries.WEBHOOK_SECRET.value,
        lambda s, v: sink(**WEBHOOK, **{f"secret{s}": v}),
        "sinks[0].secret",
        lambda c: c.sinks[0].secret,
    ),
    "webhook bearer_token": (
        canaries.WEBHOOK_BEARER.value,
        lambda s, v: sink(**WEBHOOK, **{f"bearer_token{s}": v}),
        "sinks[0].bearer_token",
        lambda c: c.sinks[0].bearer_token,
    ),
    "webhook header": (
        canaries.WEBHOOK_HEADER.value,
        lambda s, v: sink(**WEBHOOK, **{f"headers{s}": {"X-Api-Key": v}}),
        "sinks[0].headers.X-Api-Key",
        lambda c: c.sinks[0].headers["X-Api-Key"],
    ),
    "servicebus connection_string": (
        CONNECTION_STRING,
        lambda s, v: sink(**QUEUE, **{f"connection_string{s}": v}),
        "sinks[0].connection_string",
        lambda c: c.sinks[0].connection_string,
    ),
    "servicebus client_secret": (
        canaries.SERVICEBUS_CLIENT_SECRET.value,
        lambda s, v: sink(
            **QUEUE, fully_qualified_namespace="ns.example.org", **IDS, **{f"client_secret{s}": v}
        ),
        "sinks[0].client_secret",
        lambda c: c.sinks[0].client_secret,
    ),
    "kafka sasl.password": (
        canaries.SASL_PASSWORD.value,
        lambda s, v: sink(**KAFKA, **{f"producer{s}": {"sasl.password": v}}),
        "sinks[0].producer.sasl.password",
        lambda c: c.sinks[0].producer["sasl.password"],
    ),
}


def load(data: dict[str, Any]) -> BridgeConfig:
    return parse_config(yaml.safe_dump(data))


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(data)
    return caught.value.lines


def file_key(where: str) -> str:
    """`sinks[0].headers.X-Api-Key` → `sinks[0].headers_file.X-Api-Key` (the key of its file)."""
    for mapping in (".headers.", ".producer."):
        if mapping in where:
            return where.replace(mapping, mapping[:-1] + "_file.")
    return where + "_file"


@pytest.mark.parametrize("how", ["inline", "environment", "file"])
@pytest.mark.parametrize("place", PLACES)
def test_regression_whitespace_around_a_secret_is_stripped(place, how, tmp_path, monkeypatch):
    value, build, _, read = PLACES[place]
    if how == "inline":
        config = load(build("", f"  {value}\t\n"))
    elif how == "environment":  # e.g. a mounted secret file copied into a variable
        monkeypatch.setenv("CANARY", value + "\n")
        config = load(build("", "${CANARY}"))
    else:
        secret = tmp_path / "secret"
        secret.write_text(f"\n{value}\r\n")
        config = load(build("_file", str(secret)))

    assert text(read(config)) == value
    canaries.assert_clean(repr(read(config)) + repr(config), "the config's repr")


@pytest.mark.parametrize("how", ["inline", "file"])
@pytest.mark.parametrize("place", PLACES)
def test_regression_a_control_character_inside_a_secret_is_refused_unseen(place, how, tmp_path):
    value, build, where, _ = PLACES[place]
    spoiled = value[:8] + "\x1b" + value[8:]
    if how == "inline":
        lines = problems(build("", spoiled))
    else:
        secret = tmp_path / "secret"
        secret.write_text(spoiled)
        lines = problems(build("_file", str(secret)))
        where = file_key(where)

    assert lines == [f"{where}: contains a control character (U+001B); the value is not shown"]


@pytest.mark.parametrize("place", PLACES)
def test_an_unreadable_secret_file_is_one_line_naming_the_key_and_the_path(place, tmp_path):
    _, build, where, _ = PLACES[place]
    missing = tmp_path / "nowhere" / "secret"
    directory = tmp_path

    assert problems(build("_file", str(missing))) == [
        f"{file_key(where)}: cannot read {missing}: No such file or directory"
    ]
    [line] = problems(build("_file", str(directory)))
    assert line.startswith(f"{file_key(where)}: cannot read {directory}: ")


@pytest.mark.parametrize("place", PLACES)
def test_a_secret_and_its_file_together_are_refused(place, tmp_path):
    value, build, where, _ = PLACES[place]
    secret = tmp_path / "secret"
    secret.write_text(value)
    both = build("", value)
    from_file = build("_file", str(secret))
    section = both["sinks"][0] if where.startswith("sinks") else both["feed"]["auth"]
    other = from_file["sinks"][0] if where.startswith("sinks") else from_file["feed"]["auth"]
    section |= {key: item for key, item in other.items() if key.endswith("_file")}

    [line] = problems(both)
    assert line.endswith(", not both") and "_file" in line
    canaries.assert_clean(line, "the config error")


def test_each_webhook_key_of_a_list_is_stripped():
    keys = [canaries.WEBHOOK_SECRET.value + "\n", " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    config = load(sink(**WEBHOOK, secret=keys))
    assert config.sinks[0].secret.get_secret_value().split() == [key.strip() for key in keys]


def test_a_secret_file_is_read_again_when_it_changes(tmp_path, caplog):
    path = tmp_path / "token"
    path.write_text("first-token\n")
    secret = Secret.from_file(path)
    assert secret.get_secret_value() == "first-token"

    replacement = tmp_path / "token.new"  # an atomic swap, as Kubernetes does it
    replacement.write_text("second-token\n")
    os.replace(replacement, path)
    assert secret.get_secret_value() == "second-token"

    path.write_text("bad\x00token")  # a broken rotation: the last good value stays in use
    assert secret.get_secret_value() == "second-token"
    path.unlink()
    assert secret.get_secret_value() == "second-token"
    warnings = [record.getMessage() for record in caplog.records]
    assert any("control character" in warning for warning in warnings), warnings
    assert any("No such file or directory" in warning for warning in warnings), warnings
    assert "second-token" not in " ".join(warnings)

    path.write_text("third-token")
    assert secret.get_secret_value() == "third-token"
    assert repr(secret) == "Secret('**********')" and "third" not in str(secret)


def _secret_holding_models() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    seen: set[type[BaseModel]] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            if _holds(field.annotation, SecretStr):
                found.setdefault(model.__name__, []).append(name)
            for nested in _nested(field.annotation):
                visit(nested)

    for model in (BridgeConfig, FeedConfig, *config_models().values()):
        visit(model)
    return found


def _holds(annotation: Any, kind: type) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, kind):
        return True
    return any(_holds(argument, kind) for argument in getattr(annotation, "__args__", ()))


def _nested(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in getattr(annotation, "__args__", ()) for model in _nested(arg)]


def test_every_secret_field_has_a_file_variant_and_is_documented():
    found = _secret_holding_models()
    assert sum(len(names) for names in found.values()) >= 7, found
    readme = README.read_text()
    for model_name, names in found.items():
        for name in names:
            assert f"| `{name}_file` |" in readme, f"{model_name}.{name}_file is not documented"
    every = {name for model in _all_models() for name in secret_fields(model)}
    assert every == {name for names in found.values() for name in names}


def _all_models() -> set[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    pending: list[type[BaseModel]] = [BridgeConfig, *config_models().values()]
    while pending:
        model = pending.pop()
        if model not in seen:
            seen.add(model)
            for field in model.model_fields.values():
                pending += _nested(field.annotation)
    return seen


def test_a_file_key_is_suggested_and_its_path_is_not_a_secret():
    [line] = problems(feed_auth({"type": "bearer", "token_fil": "/run/secrets/token"}))
    assert line == "feed.auth.token_fil: unknown key (did you mean 'token_file'?)"
    data = {"feed": {"auth": {"type": "bearer", "token_file": "x"}}}
    assert not is_secret(BridgeConfig, ("feed", "auth", "token_file"), data)
    assert is_secret(BridgeConfig, ("feed", "auth", "token"), data)
    webhook = {"sinks": [{**WEBHOOK, "secret": ["whsec_a", "${B"]}]}
    assert is_secret(BridgeConfig, ("sinks", 0, "secret", 1), webhook)  # a list of keys
    assert not is_secret(BridgeConfig, ("sinks", 0, "secret_file"), webhook)
