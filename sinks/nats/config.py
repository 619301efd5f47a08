"""Config of the NATS JetStream sink.

`password` and `token` are secrets (masked everywhere); the NKey seed and the credentials
file are given as paths and read by nats-py when it connects. Server URLs must not carry
credentials (use the fields), so that `where` can show them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bridge.core.configspec import Duration, host_port_problem
from bridge.core.secret import Secret
from sinks._config import SinkConfig
from sinks._template import TEMPLATE_HELP, NameTemplate, template_text
from sinks._tls import TlsConfig

_SCHEMES = ("nats", "tls")
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_SUBJECT_TEXT = re.compile(r"[^\s*>]*")


def subject_problem(subject: str) -> str | None:
    """Why `subject` cannot be published to (a wildcard, a space, an empty token), or None."""
    if not subject:
        return "empty subject"
    if not _SUBJECT_TEXT.fullmatch(subject):
        return f"subject {subject!r} has a wildcard or white space"
    if "" in subject.split("."):
        return f"subject {subject!r} has an empty token"
    return None


def _list_or_comma_string(schema: dict[str, Any]) -> None:
    """The schema says what the validator takes: a list, or one comma-separated string."""
    items = schema.pop("items")
    del schema["type"]
    schema["anyOf"] = [{"type": "array", "items": items}, {"type": "string"}]


class Config(SinkConfig):
    """Publish each event to a JetStream stream and wait for its PubAck; `Nats-Msg-Id` is
    the event id, so the stream's duplicate window drops what a crash re-sends."""

    supports_binary: ClassVar[bool] = True

    type: Literal["nats"] = Field(description="Sink type.")
    servers: list[str] = Field(
        description="Server URL(s): nats://host:4222, or tls://host:4222 for TLS; a list or "
        "a comma-separated string. Credentials go in user/password, token, nkey_seed_file "
        "or creds_file, not in the URL.",
        json_schema_extra=_list_or_comma_string,
    )
    subject: str = Field(
        description=f"Subject of every message, or a template over the entry: {TEMPLATE_HELP}, "
        "e.g. dicom.{action} (UIDs hold dots: one field may span several tokens)."
    )
    stream: str = Field(
        description="JetStream stream the subject belongs to. Created when missing (file "
        "storage, subjects: the subject, or its fixed prefix followed by > for a "
        "template); an existing stream is used as it is, if it covers the subject."
    )
    duplicate_window: Duration = Field(
        "2m",
        validate_default=True,
        gt=0,
        description="The duplicate window of a stream the sink creates: a message whose "
        "Nats-Msg-Id the stream saw this recently is dropped (acknowledged as a duplicate). "
        "Keep it longer than a restart of the bridge takes.",
    )
    user: str | None = Field(None, description="User name (with password).")
    password: Secret | None = Field(None, description="The user's password.")
    token: Secret | None = Field(None, description="Authentication token.")
    nkey_seed_file: Path | None = Field(
        None, description="File holding an NKey seed (SU...) to authenticate with."
    )
    creds_file: Path | None = Field(
        None, description="Credentials file (JWT and NKey seed, as `nsc` writes it)."
    )
    tls: TlsConfig = Field(
        default_factory=TlsConfig,
        description="TLS settings (used with tls:// URLs, or when any is set).",
    )
    timeout: Duration = Field(
        "10s",
        validate_default=True,
        gt=0,
        description="Deadline of connecting and of each message's PubAck; a message not "
        "acknowledged by then is retried (the duplicate window drops it if it was stored).",
    )

    @field_validator("servers", mode="before")
    @classmethod
    def _server_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [server.strip() for server in value.split(",") if server.strip()]
        if isinstance(value, list) and not value:
            raise ValueError("at least one server URL is required")
        return value

    @field_validator("servers")
    @classmethod
    def _server_urls(cls, value: list[str]) -> list[str]:
        for number, url in enumerate(value, 1):
            parts = urlsplit(url)
            if parts.scheme not in _SCHEMES:
                raise ValueError(f"server {number}: expected a nats:// or tls:// URL")
            if parts.username or parts.password:
                raise ValueError(
                    f"server {number}: credentials go in user/password or token, not the URL"
                )
            if not parts.hostname:
                raise ValueError(f"server {number}: the URL has no host")
            problem = host_port_problem(parts)
            if problem is not None:
                raise ValueError(f"server {number}: {problem}")
        return value

    @field_validator("subject")
    @classmethod
    def _subject_template(cls, value: str) -> str:
        text, templated = template_text(value, "subject")
        if not templated:
            problem = subject_problem(value)
            if problem is not None:
                raise ValueError(problem)
            return value
        prefix = value.split("{", 1)[0]
        if not _SUBJECT_TEXT.fullmatch(text) or not prefix.endswith(".") or prefix == ".":
            raise ValueError(
                f"subject template {value!r}: start with fixed tokens (e.g. dicom.{{action}}) "
                "and use no wildcard or white space"
            )
        return value

    @field_validator("stream")
    @classmethod
    def _stream_name(cls, value: str) -> str:
        if not _STREAM_NAME.fullmatch(value):
            raise ValueError("a stream name is letters, digits, '_' and '-'")
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Config:
        ways = [
            name
            for name, given in (
                ("user", self.user is not None or self.password is not None),
                ("token", self.token is not None),
                ("nkey_seed_file", self.nkey_seed_file is not None),
                ("creds_file", self.creds_file is not None),
            )
            if given
        ]
        if len(ways) > 1:
            raise ValueError(f"set one way to authenticate, not {' and '.join(ways)}")
        if (self.user is None) != (self.password is None):
            raise ValueError("user and password go together")
        return self

    @property
    def subject_template(self) -> NameTemplate:
        return NameTemplate(self.subject)

    @property
    def stream_subjects(self) -> list[str]:
        """The subjects of a stream the sink creates."""
        if not self.subject_template.is_template:
            return [self.subject]
        return [self.subject.split("{", 1)[0] + ">"]

    @property
    def uses_tls(self) -> bool:
        return self.tls != TlsConfig() or any(url.startswith("tls://") for url in self.servers)

    @property
    def where(self) -> str:
        return f"{','.join(self.servers)} stream {self.stream} subject {self.subject}"

    def connect_options(self) -> dict[str, Any]:
        """nats-py's credentials and TLS options, secrets revealed: never log them."""
        options: dict[str, Any] = {}
        if self.user is not None and self.password is not None:
            options.update(user=self.user, password=self.password.get_secret_value())
        if self.token is not None:
            options["token"] = self.token.get_secret_value()
        if self.nkey_seed_file is not None:
            options["nkeys_seed"] = str(self.nkey_seed_file)
        if self.creds_file is not None:
            options["user_credentials"] = str(self.creds_file)
        if self.uses_tls:
            options["tls"] = self.tls.context()
        return options
