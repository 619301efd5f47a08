"""Config of the Redis Streams sink.

The URL's password (and a `password:` / `password_file:`) are secrets: registered for
scrubbing and never shown; `where` names the server without credentials.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bridge.core.configspec import Duration, host_port_problem
from bridge.core.redact import register_url
from bridge.core.secret import Secret
from sinks._config import SinkConfig
from sinks._template import TEMPLATE_HELP, NameTemplate, template_text
from sinks._tls import TlsConfig


class Config(SinkConfig):
    """Append each event to a Redis stream (`XADD`, fields `id` and `event`), a batch in
    one pipeline; a stream keeps the order of its entries, and the route never has two
    batches of a study in flight."""

    type: Literal["redis"] = Field(description="Sink type.")
    url: str = Field(
        repr=False,  # may hold a password
        description="The server: redis://host:6379/0, or rediss:// for TLS (the path is the "
        "database number). A password in the URL (redis://user:password@host) is a secret; "
        "prefer username and password.",
    )
    stream: str = Field(
        description=f"Key of the stream, or a template over the entry: {TEMPLATE_HELP}, "
        "e.g. dicom.{action}. XADD creates a stream on first use."
    )
    maxlen: int | None = Field(
        None,
        ge=1,
        description="Trim each stream to about this many entries (XADD MAXLEN ~: Redis trims "
        "whole nodes, so a stream may hold somewhat more). Unset: no trimming.",
    )
    username: str | None = Field(
        None, description="ACL user name (Redis 6+); without it, the default user."
    )
    password: Secret | None = Field(
        None, description="The user's password (or the requirepass of older servers)."
    )
    tls: TlsConfig = Field(
        default_factory=TlsConfig, description="TLS settings of rediss:// connections."
    )
    timeout: Duration = Field(
        "10s",
        validate_default=True,
        gt=0,
        description="Deadline of connecting and of each pipeline's replies; a send that runs "
        "over it is retried.",
    )

    @field_validator("url")
    @classmethod
    def _server_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("expected a redis:// or rediss:// URL")
        register_url(value)
        if not parts.hostname:
            raise ValueError("the URL has no host")
        problem = host_port_problem(parts)
        if problem is not None:
            raise ValueError(problem)
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise ValueError("the path of the URL is the database number, e.g. /0")
        return value.strip()

    @field_validator("stream")
    @classmethod
    def _stream_template(cls, value: str) -> str:
        text, templated = template_text(value, "stream")
        if not text and not templated:
            raise ValueError("empty stream key")
        return value

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> Config:
        if self.tls != TlsConfig() and not self.uses_tls:
            raise ValueError("tls settings need a rediss:// URL")
        return self

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme == "rediss"

    @property
    def stream_template(self) -> NameTemplate:
        return NameTemplate(self.stream)

    @property
    def where(self) -> str:
        parts = urlsplit(self.url)
        port = parts.port or 6379
        database = parts.path.strip("/") or "0"
        return f"{parts.scheme}://{parts.hostname}:{port}/{database} stream {self.stream}"

    def client_options(self) -> dict[str, Any]:
        """redis-py's connection options besides the URL, secrets revealed: never log them."""
        options: dict[str, Any] = {
            "socket_connect_timeout": self.timeout,
            "socket_timeout": self.timeout,
        }
        if self.username is not None:
            options["username"] = self.username
        if self.password is not None:
            options["password"] = self.password.get_secret_value()
        if self.uses_tls:
            tls = self.tls
            options["ssl_cert_reqs"] = "required" if tls.verify else "none"
            options["ssl_check_hostname"] = tls.verify
            if tls.ca_file is not None:
                options["ssl_ca_certs"] = str(tls.ca_file)
            if tls.cert_file is not None:
                options["ssl_certfile"] = str(tls.cert_file)
                options["ssl_keyfile"] = str(tls.key_file)
        return options
