"""The central scrubber: every configured secret, in every spelling it travels in, is masked
in any text; nothing else is."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from bridge.config import parse_config
from bridge.core.redact import MASK, Redactor
from tests.security import canaries


@pytest.fixture
def redact() -> Redactor:
    return Redactor()


def test_a_secret_is_masked_in_every_spelling_a_peer_may_echo(redact):
    secret = canaries.SAS_KEY.value  # has characters URL and JSON encodings change: + / =
    redact.add(secret)
    spellings = [
        secret,
        f"Bearer {secret}",
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps({"token": secret}),
        repr(secret.encode() + b"\n"),
        *(base64.b64encode(prefix + secret.encode()).decode() for prefix in (b"", b"u:", b"x")),
    ]
    for spelled in spellings:
        scrubbed = redact(f"peer said: {spelled}!")
        canaries.assert_clean(scrubbed, f"the scrubbed {spelled!r}")
        assert scrubbed.startswith("peer said: ") and MASK in scrubbed


def test_derived_secrets_are_masked_too(redact):
    redact.add(canaries.servicebus_connection_string("myns.example.org", emulator=False))
    redact.add(canaries.WEBHOOK_SECRET.value)
    redact.add_url(canaries.webhook_url("https://h.example.org/api/hook", user_info=True))
    basic = base64.b64encode(
        f"{canaries.WEBHOOK_URL_USER.value}:{canaries.WEBHOOK_URL_PASSWORD.value}".encode()
    ).decode()
    echoed = (
        f"SharedAccessKey={canaries.SAS_KEY.value}; the key {quote(canaries.SAS_KEY.value)}; "
        f"signing key {canaries.WEBHOOK_SECRET_KEY.value}; body {canaries.WEBHOOK_SECRET.value[6:]}"
        f"; Authorization: Basic {basic}; password {canaries.WEBHOOK_URL_PASSWORD.value}; "
        f"GET /api/hook?code={canaries.WEBHOOK_URL_CODE.value}; "
        "SharedAccessSignature sr=sb%3A%2F%2Fmyns&sig=AbCdEf%2BgH%3D&se=1&skn=send"
    )

    scrubbed = redact(echoed)

    canaries.assert_clean(scrubbed, "the scrubbed echo")
    assert "sig=**********&se=1&skn=send" in scrubbed
    assert scrubbed.startswith("SharedAccessKey=**********; the key **********;")


def test_a_storage_account_key_is_masked_alone(redact):
    key = "U3RvcmFnZUFjY291bnRLZXlGb3JUZXN0cw=="
    redact.add(f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};")
    assert redact(f"signed with {key}") == "signed with **********"


def test_configured_secrets_are_registered_when_the_config_loads():
    token = "Loaded-At-Parse-Time-Tok3n"
    parse_config(
        "feed: {url: 'http://h', auth: {type: bearer, token: '" + token + "'}}\n"
        "sinks: [{name: a, type: stdout}]"
    )
    from bridge.core import redact

    assert redact.scrub(f"echo {token}") == f"echo {MASK}"


def test_text_without_secrets_is_left_alone(redact):
    redact.add("s3cr3t-value")
    redact.add("ab")  # too short to tell apart from ordinary text: not masked
    text = 'sink hooks: 400 Bad Request from http://h/hooks: {"error": "ab"}'
    assert redact(text) == text
    assert Redactor()(text) == text


def test_rotated_values_of_one_source_are_bounded(redact):
    for number in range(50):
        redact.add(f"rotated-token-{number:04d}", source="token file")
    kept = [n for n in range(50) if redact(f"rotated-token-{n:04d}") == MASK]
    assert kept and kept[-1] == 49 and len(kept) < 10
