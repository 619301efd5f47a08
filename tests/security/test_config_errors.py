"""A config error about a secret (or about a field a secret was pasted into) names the key
and the problem, never the value: each config below holds one mistake per sink and one in
the feed, and `dicom-bridge check` must report each at its key (exit 2) without any
canary. Then the regression tests of the leaks this suite found, in process."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bridge.config import ConfigError, parse_config
from tests.security import canaries
from tests.security.scenario import cli, config_file

FEED = "http://127.0.0.1:9"  # never contacted: validation fails first
QUEUE = {"type": "servicebus", "queue": "dicom-changes"}


def webhook(**settings: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": "http://127.0.0.1:9/hooks", **settings}


def kafka(**producer: Any) -> dict[str, Any]:
    return {"type": "kafka", "bootstrap_servers": "127.0.0.1:9", "topic": "t", "producer": producer}


BAD_SINKS: list[dict[str, Any]] = [
    webhook(url=canaries.webhook_url("ftp://127.0.0.1/hooks", user_info=True)),
    webhook(secret=canaries.WEBHOOK_SECRET.value + "!"),
    webhook(secret={"key": canaries.WEBHOOK_SECRET.value}),
    webhook(headers={"X-Api-Key": canaries.WEBHOOK_HEADER.value + "\nX-Injected: 1"}),
    webhook(
        bearer_token=canaries.WEBHOOK_BEARER.value,
        headers={"Authorization": f"Bearer {canaries.WEBHOOK_HEADER.value}"},
    ),
    webhook(
        url=canaries.webhook_url("http://127.0.0.1:9/hooks", user_info=True),
        bearer_token=canaries.WEBHOOK_BEARER.value,
    ),
    webhook(bearer_token="${" + canaries.WEBHOOK_BEARER.value),  # `$${` was meant
    {
        **QUEUE,
        "connection_string": f"SharedAccessKeyName=k;SharedAccessKey={canaries.SAS_KEY.value}",
    },
    {
        **QUEUE,
        "connection_string": canaries.servicebus_connection_string("127.0.0.1:9"),
        "client_secret": canaries.SERVICEBUS_CLIENT_SECRET.value,
    },
    {**QUEUE, "fully_qualified_namespace": canaries.servicebus_connection_string("127.0.0.1:9")},
    {
        **QUEUE,
        "fully_qualified_namespace": "myns.servicebus.windows.net",
        "client_secret": canaries.SERVICEBUS_CLIENT_SECRET.value,
    },
    kafka(**{"sasl.password": {"value": canaries.SASL_PASSWORD.value}}),
    kafka(**{"ssl.key.password": [canaries.SSL_KEY_PASSWORD.value]}),
]
BAD_FEEDS: list[dict[str, Any]] = [
    {"auth": {**canaries.feed_bearer(), "token_file": "token.txt"}},
    {"auth": {"type": "bearer", "token": [canaries.FEED_TOKEN.value]}},
    {"auth": {"type": "azure", "client_secret": canaries.FEED_CLIENT_SECRET.value}},
    {"url": canaries.webhook_url("https://dicom.example.org/v1", user_info=True)},
]


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize(
    "feed", BAD_FEEDS, ids=["token-and-file", "token-list", "azure-secret-alone", "url"]
)
def test_config_errors_name_the_key_but_never_the_secret(tmp_path, feed, log_format):
    sinks = [{"name": f"s{index}", **sink} for index, sink in enumerate(BAD_SINKS)]
    config = config_file(tmp_path, FEED, sinks, feed=feed)

    checked = cli("check", "-c", str(config), log_format=log_format)

    assert checked.returncode == 2 and checked.stdout == ""
    lines = checked.stderr.splitlines()
    if log_format == "json":
        lines = [orjson.loads(line)["message"] for line in lines]
    problems = [line.split("config error: ", 1)[1] for line in lines]
    assert any(problem.startswith("feed.") for problem in problems)
    for index in range(len(BAD_SINKS)):  # one mistake each, reported at its key
        assert any(problem.startswith(f"sinks[{index}].") for problem in problems), index


def problems(text: str) -> list[str]:
    try:
        parse_config(text)
    except ConfigError as exc:
        return exc.lines
    raise AssertionError("the config is valid")


def test_regression_a_feed_url_with_user_info_is_refused_and_shown_without_it():
    url = canaries.webhook_url("https://dicom.example.org/v1", user_info=True)
    assert problems(f"feed: {{url: '{url}'}}\nsinks: [{{name: a, type: stdout}}]") == [
        "feed.url: invalid URL 'https://dicom.example.org/v1' with user info (credentials go in "
        "feed.auth: the URL is logged and is every event's source)"
    ]
    url = "https://dicom.example.org?code=" + canaries.WEBHOOK_URL_CODE.value
    assert problems(f"feed: {{url: '{url}'}}\nsinks: [{{name: a, type: stdout}}]") == [
        "feed.url: invalid URL 'https://dicom.example.org' (no query or fragment allowed)"
    ]


def test_regression_a_connection_string_given_as_the_namespace_is_not_echoed():
    value = canaries.servicebus_connection_string("myns.servicebus.windows.net")
    text = f"feed: {{url: '{FEED}'}}\nsinks: [{{name: q, type: servicebus, queue: q, "
    assert problems(text + f"fully_qualified_namespace: '{value}'}}]") == [
        "sinks[0].fully_qualified_namespace: expected a host such as "
        "myns.servicebus.windows.net, got key=value settings (not shown: they may hold a key); "
        "a connection string goes in connection_string"
    ]


def test_regression_an_invalid_reference_is_quoted_only_outside_secrets():
    sinks = (
        f"[{{name: h, type: webhook, url: 'http://h/${{HOST', bearer_token: "
        f"'${{{canaries.WEBHOOK_BEARER.value}', headers: {{X-Key: 'a${{b c}}'}}}}]"
    )
    hint = "(use ${NAME} or ${NAME:-default}, and $${ for a literal ${)"
    assert problems(f"feed: {{url: '{FEED}'}}\nsinks: {sinks}") == [
        f"sinks[0].url: invalid reference '${{HOST' {hint}",
        f"sinks[0].bearer_token: invalid reference in this secret value, not quoted {hint}",
        f"sinks[0].headers.X-Key: invalid reference in this secret value, not quoted {hint}",
    ]


@pytest.mark.parametrize("credential", ["bearer_token: t", "headers: {authorization: Basic eA==}"])
def test_regression_user_info_in_a_webhook_url_cannot_replace_another_credential(credential):
    url = canaries.webhook_url("http://127.0.0.1:9/hooks", user_info=True)
    text = (
        f"feed: {{url: '{FEED}'}}\nsinks: [{{name: h, type: webhook, url: '{url}', {credential}}}]"
    )
    other = "bearer_token" if "bearer" in credential else "headers.authorization"
    [problem] = problems(text)
    assert problem == (
        f"sinks[0].url: its user info (Basic authentication) and {other} would both set "
        "Authorization; keep one"
    )
