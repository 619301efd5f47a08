"""Config of the RabbitMQ sink.

The URL's password (or `password:` / `password_file:`, which replaces it) is a secret:
registered for scrubbing and never shown; `where` names the broker without credentials.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from bridge.core.configspec import Duration, host_port_problem
from bridge.core.redact import register_url
from bridge.core.secret import Secret
from sinks._config import SinkConfig
from sinks._template import TEMPLATE_HELP, NameTemplate, template_text
from sinks._tls import TlsConfig

_EXCHANGE = re.compile(r"[A-Za-z0-9_.:-]{1,127}")
MAX_ROUTING_KEY = 255


def routing_key_problem(key: str) -> str | None:
    """Why `key` cannot be a routing key, or None."""
    if len(key.encode()) > MAX_ROUTING_KEY:
        return f"routing key longer than {MAX_ROUTING_KEY} bytes"
    return None


class Config(SinkConfig):
    """Publish each event, persistent, to a topic exchange and wait for the broker's
    publisher confirm; `message_id` is the event id."""

    supports_binary: ClassVar[bool] = True

    type: Literal["rabbitmq"] = Field(description="Sink type.")
    url: str = Field(
        repr=False,  # holds the password
        description="The broker: amqp://user:password@host:5672/vhost, or amqps:// for TLS "
        "(the vhost URL-encoded: %2F for /). The password is a secret; `password` replaces it.",
    )
    password: Secret | None = Field(
        None, description="The user's password, instead of the one in the URL."
    )
    exchange: str = Field(
        description="Exchange the events are published to: declared (topic, durable) when "
        "missing; an existing one must be a durable topic exchange (amq.* exchanges are "
        "used as they are)."
    )
    routing_key: str = Field(
        "dicom.{action}",
        description=f"Routing key of every message, or a template over the entry: {TEMPLATE_HELP}.",
    )
    mandatory: bool = Field(
        True,
        description="Publish mandatory: a message no queue is bound for comes back and is a "
        "permanent failure (dead-lettered with the reason, or the route stops without a "
        "dead_letter). false: the broker drops such messages, and they count as delivered.",
    )
    tls: TlsConfig = Field(
        default_factory=TlsConfig, description="TLS settings of amqps:// connections."
    )
    timeout: Duration = Field(
        "10s",
        validate_default=True,
        gt=0,
        description="Deadline of connecting and of each message's confirm; a message not "
        "confirmed by then is retried (and may then be held twice).",
    )

    @field_validator("url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError("expected an amqp:// or amqps:// URL")
        register_url(value)
        if parts.password:
            register_url(value.replace(parts.password, unquote(parts.password)))
        if not parts.hostname:
            raise ValueError("the URL has no host")
        problem = host_port_problem(parts)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("exchange")
    @classmethod
    def _exchange_name(cls, value: str) -> str:
        if not _EXCHANGE.fullmatch(value):
            raise ValueError(
                "an exchange name is 1-127 letters, digits, '-', '_', '.' and ':' (the "
                "default exchange cannot be used)"
            )
        return value

    @field_validator("routing_key")
    @classmethod
    def _routing_key_template(cls, value: str) -> str:
        text, _ = template_text(value, "routing_key")
        problem = routing_key_problem(text)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _tls_needs_amqps(self) -> Config:
        if self.tls != TlsConfig() and not self.uses_tls:
            raise ValueError("tls settings need an amqps:// URL")
        return self

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme == "amqps"

    @property
    def routing_key_template(self) -> NameTemplate:
        return NameTemplate(self.routing_key)

    @property
    def predeclared(self) -> bool:
        """The broker's own exchanges (amq.*): never declared, only checked."""
        return self.exchange.startswith("amq.")

    @property
    def where(self) -> str:
        parts = urlsplit(self.url)
        port = parts.port or (5671 if self.uses_tls else 5672)
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return f"{parts.scheme}://{parts.hostname}:{port} vhost {vhost} exchange {self.exchange}"

    def connection_url(self) -> str:
        """The URL to connect with, the `password` field in it: never log it."""
        if self.password is None:
            return self.url
        parts = urlsplit(self.url)
        user = quote(unquote(parts.username or "guest"), safe="")
        secret = quote(self.password.get_secret_value(), safe="")
        host = parts.hostname or ""
        netloc = f"{user}:{secret}@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
