"""The webhook sink's config: secrets in every accepted form, never echoed; consistency
rules between keys."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError, parse_config
from sinks.webhook.config import Config, is_webhook_secret

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_dGhlIG90aGVyIGtleSBvZiBhIHJvdGF0aW9uIQ=="


def sink(extra: str = "", url: str = "https://h/x") -> Config:
    text = f"feed: {{url: http://h}}\nsinks: [{{name: a, type: webhook, url: '{url}'{extra}}}]"
    return parse_config(text).sinks[0]


def problems(extra: str, url: str = "https://h/x") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        sink(extra, url)
    return caught.value.lines


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (f"'{SECRET}'", 1),
        (f"'{SECRET.removeprefix('whsec_')}'", 1),  # the prefix is optional
        (f"'{SECRET} {OTHER}'", 2),  # one ${VAR} holding both keys of a rotation
        (f"[{SECRET}, '{OTHER}']", 2),
        ("[]", 0),
    ],
)
def test_secrets_are_accepted_in_every_form(value: str, count: int) -> None:
    config = sink(f", secret: {value}")
    secrets = config.secret.get_secret_value().split() if config.secret else []
    assert len(secrets) == count
    assert all(is_webhook_secret(secret) for secret in secrets)


@pytest.mark.parametrize(
    "value", ["'whsec_not base64!'", "'whsec_'", "[whsec_QUJD, 'c2Vj%%']", "987654321", "[1234]"]
)
def test_a_bad_secret_is_reported_without_its_value(value: str) -> None:
    [line] = problems(f", secret: {value}")
    assert line.startswith("sinks[0].secret")
    for fragment in ("base64!", "c2Vj", "987654321", "1234"):
        assert fragment not in line


def test_no_secret_value_appears_in_repr() -> None:
    configs = [  # user info (Basic authentication) excludes a bearer token
        sink(
            f", secret: {SECRET}, bearer_token: tok3n, headers: {{X-Api-Key: k3y}}",
            url="https://h/x?code=urlkey",
        ),
        sink(
            f", secret: {SECRET}, headers: {{X-Api-Key: k3y}}", url="https://u:pw@h/x?code=urlkey"
        ),
    ]
    shown = "".join(repr(config) + str(config) for config in configs)
    for secret in (SECRET.removeprefix("whsec_"), "tok3n", "k3y", "urlkey", "pw@"):
        assert secret not in shown


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (", headers: {webhook-id: x}", "sinks[0].headers: webhook-id is set by the webhook sink"),
        (", headers: {Ce-Id: x}", "sinks[0].headers: Ce-Id is set by the webhook sink"),
        (", headers: {'bad name': x}", "sinks[0].headers: 'bad name' is not a valid header name"),
        (
            ", bearer_token: t, headers: {authorization: 'Basic x'}",
            "sinks[0].headers: Authorization is already set by bearer_token; keep one",
        ),
        (", batch: 10, format: raw", "sinks[0].batch: needs format: cloudevents"),
        (", batch: 1001", "sinks[0].batch: must be at most 1000"),
        (", batch: 500, max_pending: 400", "sinks[0].max_pending: must be at least batch (500)"),
        (", http2: true", "sinks[0].http2: needs the h2 package"),
        (", tls: {verify: false, ca_file: ca.pem}", "sinks[0].tls.ca_file: has no effect"),
        (", tls: {cert_file: c.pem}", "sinks[0].tls.key_file: cert_file and key_file go"),
        (", timeout: 0s", "sinks[0].timeout: must be greater than 0"),
        (", concurrency: 0", "sinks[0].concurrency: must be at least 1"),
    ],
)
def test_inconsistent_settings_are_one_line_each(extra: str, expected: str) -> None:
    [line] = problems(extra)
    assert line.startswith(expected), line


def test_the_url_must_be_http_and_is_not_echoed() -> None:
    [line] = problems("", url="ftp://h/x?code=urlkey")
    assert line == "sinks[0].url: must be an http:// or https:// URL with a host"


def test_defaults() -> None:
    config = sink()
    assert (config.format, config.timeout, config.concurrency) == ("cloudevents", 15.0, 16)
    assert config.batch is None and config.batch_size == 100
    assert config.tls.verify and config.secret is None and config.headers == {}
    assert not config.http2


def test_batch_size_follows_batch_unless_given() -> None:
    assert sink(", batch: 20").batch_size == 20
    assert sink(", batch: 20, batch_size: 60").batch_size == 60


def test_binary_mode_is_allowed() -> None:
    assert sink(", format: cloudevents-binary").format == "cloudevents-binary"
