"""Config of the webhook sink (light imports only: the registry imports every sink config).

Validation messages never contain the value of a secret, a header or the URL (whose query
string often carries a key, e.g. Azure Functions' `?code=`); the URL's password and query
values are registered for scrubbing like secrets.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import re
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator, model_validator

from bridge.core.configspec import Duration, error_at, host_port_problem
from bridge.core.redact import register_url
from bridge.core.secret import Secret
from sinks._config import SinkConfig
from sinks._tls import TlsConfig
from sinks.webhook.outcome import display_url

_SECRET = re.compile(r"(?:whsec_)?[A-Za-z0-9+/]+={0,2}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)


def _joined_secrets(value: Any) -> Any:
    """One secret, several separated by whitespace (one `${VAR}` or file can hold both keys
    of a rotation), or a list of them: one value, split when requests are signed."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return " ".join(item.strip() for item in value)
    if isinstance(value, int | float):  # YAML read it as a number: still never echo it
        return str(value)
    return value


Secrets = Annotated[Secret | None, BeforeValidator(_joined_secrets)]


def is_webhook_secret(text: str) -> bool:
    """A Standard Webhooks symmetric secret: base64, optionally prefixed `whsec_`."""
    if not _SECRET.fullmatch(text):
        return False
    body = text.removeprefix("whsec_")
    try:
        return bool(base64.b64decode(body + "=" * (-len(body) % 4), validate=True))
    except binascii.Error:
        return False


def webhook_secrets_problem(text: str) -> str | None:
    """Why `text` (secrets separated by whitespace) is not a list of webhook secrets."""
    for number, secret in enumerate(text.split(), 1):
        if not is_webhook_secret(secret):
            return (
                f"secret {number} is not a Standard Webhooks secret (expected whsec_ "
                "followed by base64; the value is not shown)"
            )
    return None


class Config(SinkConfig):
    """POST each event (or a batch of events) to an HTTP endpoint, signed per the Standard
    Webhooks spec; the receiver's status code decides between delivered, retried later,
    dead-lettered and stopping the route."""

    supports_binary: ClassVar[bool] = True

    type: Literal["webhook"] = Field(description="Sink type.")
    url: str = Field(
        repr=False,  # its query string may hold a key
        description="Endpoint the events are POSTed to (http:// or https://). Redirects are "
        "not followed. Logs and errors show it without query string and user info, which "
        "often carry keys.",
    )
    secret: Secrets = Field(
        None,
        description="Standard Webhooks signing secret(s), whsec_<base64> (the prefix is "
        "optional): one string, several separated by spaces, or a list. Each request carries "
        "one v1 signature per secret in webhook-signature, so a key can be rotated without "
        "downtime. Empty: requests carry webhook-id and webhook-timestamp but no signature.",
    )
    bearer_token: Secret | None = Field(
        None, description="Sent as `Authorization: Bearer <token>` (use ${VAR})."
    )
    headers: dict[str, Secret] = Field(
        default_factory=dict,
        description="Static headers added to every request (e.g. an API key); their values "
        "are treated as secrets. Content-Type, webhook-* and ce-* are set by the sink.",
    )
    timeout: Duration = Field(
        "15s",
        validate_default=True,
        gt=0,
        description="Deadline of each request, from connecting to the end of the response; "
        "a request that runs over it counts as failed and is retried.",
    )
    concurrency: int = Field(
        16,
        ge=1,
        description="Requests in flight at once for this route (also the connection pool "
        "size). Events of one study are always sent one after another.",
    )
    batch: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Send up to this many events per request as a JSON array "
        "(application/cloudevents-batch+json); only for receivers that ask for it. Needs "
        "format cloudevents; batch_size defaults to this value.",
    )
    tls: TlsConfig = Field(default_factory=TlsConfig, description="TLS settings for https://.")
    http2: bool = Field(
        False,
        description="Offer HTTP/2 (needs the h2 package: pip install 'httpx[http2]'). By "
        "default HTTP/1.1 over a pool of keep-alive connections.",
    )

    @property
    def where(self) -> str:
        return display_url(self.url)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        problem = host_port_problem(parts)
        if problem:
            raise ValueError(problem)
        register_url(value)
        return value

    @field_validator("secret")
    @classmethod
    def _secrets_decode(cls, value: Secret | None) -> Secret | None:
        if value is None:
            return None
        problem = webhook_secrets_problem(value.get_secret_value())
        if problem is not None:
            source = f" (read from {value.path})" if value.path else ""
            raise ValueError(f"{problem}{source}")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        for name in value:
            lower = name.lower()
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if lower in RESERVED_HEADERS or lower.startswith("ce-"):
                raise ValueError(f"{name} is set by the webhook sink and cannot be overridden")
        return value

    @field_validator("http2")
    @classmethod
    def _h2_installed(cls, value: bool) -> bool:
        if value and importlib.util.find_spec("h2") is None:
            raise ValueError(
                "needs the h2 package, which is not installed (pip install 'httpx[http2]')"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.bearer_token is not None and any(
            name.lower() == "authorization" for name in self.headers
        ):
            raise error_at(
                "headers", message="Authorization is already set by bearer_token; keep one"
            )
        # httpx turns user info into Basic authentication, replacing any other Authorization.
        if "@" in urlsplit(self.url).netloc:
            other = "bearer_token" if self.bearer_token is not None else None
            other = other or next(
                (f"headers.{n}" for n in self.headers if n.lower() == "authorization"), None
            )
            if other is not None:
                raise error_at(
                    "url",
                    message=f"its user info (Basic authentication) and {other} would both set "
                    "Authorization; keep one",
                )
        if self.batch is not None:
            if self.format != "cloudevents":
                raise error_at(
                    "batch",
                    message="needs format: cloudevents (a batch is a JSON array of "
                    "structured events)",
                )
            if "batch_size" not in self.model_fields_set:
                self.batch_size = self.batch
                if self.max_pending < self.batch_size:
                    raise error_at("max_pending", message=f"must be at least batch ({self.batch})")
        return self
