"""Canary secrets: one unmistakable value per kind of secret the bridge accepts, config
fragments that put them where a user would, and a scan that finds any of them (plain,
URL-encoded or base64-encoded at any alignment) in whatever the bridge printed, logged,
served or raised.

    from tests.security import canaries

    sim = simulator(entries=50, token=canaries.FEED_TOKEN.value)
    hooks = WebhookReceiver([canaries.WEBHOOK_SECRET.value],
                            bearer_token=canaries.WEBHOOK_BEARER.value)
    basic = WebhookReceiver([canaries.WEBHOOK_SECRET.value])  # user info: no bearer token
    sinks = [{"name": "hooks", "type": "webhook", **canaries.webhook_options(hooks.url)},
             {"name": "basic", "type": "webhook",
              **canaries.webhook_options(basic.url, user_info=True)},
             {"name": "events", "type": "kafka", ..., "producer": canaries.kafka_producer()},
             {"name": "queue", "type": "servicebus", "queue": "q",
              "connection_string": canaries.servicebus_connection_string(amqp.address)}]
    feed = {"url": sim.url, "auth": canaries.feed_bearer()}
    ...
    canaries.assert_clean(completed.stderr, "run --log-format json stderr")

(`tests.security.scenario.canary_sinks` builds that list of routes.) Values are fixed
(deterministic tests) and distinct per kind, so a failure names the kind of secret that
leaked, the form it leaked in and where.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit


@dataclass(frozen=True)
class Canary:
    kind: str
    value: str

    def forms(self) -> dict[str, str]:
        """Every spelling of the value worth looking for, by name."""
        spellings = {"plain": self.value, "url-encoded": quote(self.value, safe="")}
        data = self.value.encode()
        for offset in range(3):  # base64 of the value inside longer text, at any alignment
            encoded = base64.b64encode(bytes(offset) + data).decode()
            middle = encoded[-(-8 * offset // 6) : 8 * (offset + len(data)) // 6]
            spellings[f"base64@{offset}"] = middle
            spellings[f"base64url@{offset}"] = middle.replace("+", "-").replace("/", "_")
        unique: dict[str, str] = {}
        for name, spelling in spellings.items():
            if spelling not in unique.values():
                unique[name] = spelling
        return unique


FEED_TOKEN = Canary("feed bearer token", "CnryFeedBearerTok3nQ7xV")
FEED_TOKEN_FILE = Canary("feed token_file content", "CnryFeedTokenFileZ4pW")
FEED_CLIENT_SECRET = Canary("feed Entra client_secret", "CnryFeedClientSecr3t~K2m")
ENTRA_ACCESS_TOKEN = Canary("Entra access token", "CnryEntraAccessTok3nR8d")
SAS_KEY = Canary("Service Bus SharedAccessKey", "CnrySasKey+Vx/9Lq2Wm=")
SERVICEBUS_CLIENT_SECRET = Canary("Service Bus Entra client_secret", "CnrySbClientSecr3t~J5n")
WEBHOOK_SECRET = Canary(
    "webhook secret", "whsec_" + base64.b64encode(b"CnryWebhookSigningKey-0123456789").decode()
)
WEBHOOK_SECRET_KEY = Canary("webhook secret (decoded key)", "CnryWebhookSigningKey-0123456789")
WEBHOOK_BEARER = Canary("webhook bearer_token", "CnryWebhookBearerT0kenM3s")
WEBHOOK_HEADER = Canary("webhook header value", "CnryWebhookApiKeyH6t")
WEBHOOK_URL_CODE = Canary("webhook URL ?code=", "CnryFunctionCodeU9b")
WEBHOOK_URL_USER = Canary("webhook URL user", "cnryurluser")
WEBHOOK_URL_PASSWORD = Canary("webhook URL password", "CnryUrlPassw0rdG2c")
SASL_PASSWORD = Canary("kafka sasl.password", "CnrySaslPassw0rdF5y")
SSL_KEY_PASSWORD = Canary("kafka ssl.key.password", "CnrySslKeyPassw0rdT3e")
OAUTH_CLIENT_SECRET = Canary("kafka sasl.oauthbearer.client.secret", "CnryOauthClientSecr3tL1w")

ALL: tuple[Canary, ...] = (
    FEED_TOKEN,
    FEED_TOKEN_FILE,
    FEED_CLIENT_SECRET,
    ENTRA_ACCESS_TOKEN,
    SAS_KEY,
    SERVICEBUS_CLIENT_SECRET,
    WEBHOOK_SECRET,
    WEBHOOK_SECRET_KEY,
    WEBHOOK_BEARER,
    WEBHOOK_HEADER,
    WEBHOOK_URL_CODE,
    WEBHOOK_URL_USER,
    WEBHOOK_URL_PASSWORD,
    SASL_PASSWORD,
    SSL_KEY_PASSWORD,
    OAUTH_CLIENT_SECRET,
)
"""Every canary; a test uses all of them in its configs, so any output is scanned for all."""


# -- the scan ------------------------------------------------------------------------------


def leaks(output: str | bytes, canaries: Iterable[Canary] = ALL) -> list[str]:
    """`kind (form)` of every canary found in `output`."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    return [
        f"{canary.kind} ({form})"
        for canary in canaries
        for form, spelling in canary.forms().items()
        if spelling in text
    ]


def assert_clean(output: str | bytes, where: str, canaries: Iterable[Canary] = ALL) -> None:
    """Fail naming every canary found in `output` (`where` says what output it was)."""
    found = leaks(output, canaries)
    if found:
        raise AssertionError(f"secrets leaked in {where}: {', '.join(dict.fromkeys(found))}")


# -- config fragments ----------------------------------------------------------------------


def feed_bearer() -> dict[str, str]:
    """`feed.auth` with the static token (start the simulator with `token=FEED_TOKEN.value`)."""
    return {"type": "bearer", "token": FEED_TOKEN.value}


def webhook_url(url: str, *, user_info: bool = False) -> str:
    """`url` with an Azure Functions style `?code=` key and, if asked, user info."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user_info:
        netloc = f"{WEBHOOK_URL_USER.value}:{WEBHOOK_URL_PASSWORD.value}@{netloc}"
    query = f"code={WEBHOOK_URL_CODE.value}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def webhook_options(url: str, *, user_info: bool = False) -> dict[str, object]:
    """A webhook sink's secret-bearing settings. The receiver: `WebhookReceiver(
    [WEBHOOK_SECRET.value], bearer_token=WEBHOOK_BEARER.value)`; with `user_info` (Basic
    authentication, which excludes a bearer token) `WebhookReceiver([WEBHOOK_SECRET.value])`."""
    options: dict[str, object] = {
        "url": webhook_url(url, user_info=user_info),
        "secret": WEBHOOK_SECRET.value,
        "headers": {"X-Api-Key": WEBHOOK_HEADER.value},
    }
    if not user_info:
        options["bearer_token"] = WEBHOOK_BEARER.value
    return options


def kafka_producer(**properties: str) -> dict[str, str]:
    """Producer properties holding every Kafka canary (librdkafka ignores the SASL and SSL
    ones on a PLAINTEXT connection, so the mock cluster still accepts the producer)."""
    return {
        "sasl.username": "dicom-bridge",
        "sasl.password": SASL_PASSWORD.value,
        "ssl.key.password": SSL_KEY_PASSWORD.value,
        "sasl.oauthbearer.client.id": "dicom-bridge",
        "sasl.oauthbearer.client.secret": OAUTH_CLIENT_SECRET.value,
        **properties,
    }


def servicebus_connection_string(address: str, *, emulator: bool = True) -> str:
    """A connection string to `address` (the AMQP peer's) whose key is the SAS canary."""
    flag = ";UseDevelopmentEmulator=true" if emulator else ""
    return (
        f"Endpoint=sb://{address};SharedAccessKeyName=RootManageSharedAccessKey;"
        f"SharedAccessKey={SAS_KEY.value}{flag}"
    )
