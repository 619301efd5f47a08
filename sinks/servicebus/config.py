"""Config of the Azure Service Bus sink.

Authentication is a shared-access connection string (also the emulator's, which the SDK
recognises by `UseDevelopmentEmulator=true`) or a namespace plus a Microsoft Entra ID
credential, chosen with the same options as the feed's `auth: {type: azure}` block.
Validators never put the connection string or the client secret in their messages.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import ByteSize, Field, field_validator, model_validator

from bridge.core.configspec import Duration, EntraCredential, error_at
from bridge.core.secret import Secret
from sinks._config import SinkConfig

#: Service Bus entity names: letters, digits, '.', '-', '_' and '/' (nested paths).
_ENTITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,259}")
_NAMESPACE = re.compile(r"[A-Za-z0-9.-]+(:\d+)?")
#: The SDK only honours the lower-case spelling of this flag.
_EMULATOR_FLAG = re.compile(r"(UseDevelopmentEmulator\s*=\s*)true", re.IGNORECASE)


def connection_string_problem(value: str) -> str | None:
    """Why `value` is not a usable Service Bus connection string (without echoing it)."""
    keys = {
        part.split("=", 1)[0].strip().lower()
        for part in value.split(";")
        if "=" in part and part.strip()
    }
    if "endpoint" not in keys:
        return "not a Service Bus connection string (no Endpoint=sb://...)"
    if not ({"sharedaccesskeyname", "sharedaccesskey"} <= keys or "sharedaccesssignature" in keys):
        return (
            "needs SharedAccessKeyName and SharedAccessKey (or SharedAccessSignature); for "
            "Entra ID use fully_qualified_namespace instead"
        )
    return None


class Config(SinkConfig, EntraCredential):
    """Send each event as one message to an Azure Service Bus queue or topic, in batches
    sized to the entity's limit; the message id is the event id (for duplicate detection)
    and, with `sessions`, the session id is the StudyInstanceUID."""

    supports_binary: ClassVar[bool] = True

    type: Literal["servicebus"] = Field(description="Sink type.")
    connection_string: Secret | None = Field(
        None,
        description="Shared access connection string (use ${VAR}): Endpoint=sb://...;"
        "SharedAccessKeyName=...;SharedAccessKey=... The emulator's "
        "(UseDevelopmentEmulator=true) works as is. Either this or fully_qualified_namespace.",
    )
    fully_qualified_namespace: str | None = Field(
        None,
        description="The namespace host (<name>.servicebus.windows.net), authenticated with "
        "Microsoft Entra ID: DefaultAzureCredential (managed identity, workload identity, az "
        "login...) unless the options below choose a credential. Needs the Azure Service Bus "
        "Data Sender role on the entity.",
    )
    queue: str | None = Field(None, description="Queue to send to (either queue or topic).")
    topic: str | None = Field(None, description="Topic to send to (either queue or topic).")
    sessions: bool = Field(
        False,
        description="Set each message's session id to the StudyInstanceUID, for session-enabled "
        "entities: consumers then get each study's changes in order, one consumer per study "
        "at a time. Required by session-enabled entities; leave off otherwise.",
    )
    batching: bool = Field(
        True,
        description="Pack events into Service Bus batches (fewer transfers). Off: one message "
        "per transfer, each study's messages one after the other, up to max_in_flight "
        "studies at once. Partitioned entities with duplicate detection refuse batches of "
        "distinct messages: the sink turns batching off by itself at the first refusal "
        "(with a warning); set false to skip that first try.",
    )
    time_to_live: Duration | None = Field(
        None,
        gt=0,
        description="Message time to live (e.g. 12h, or 168h for a week); default: the entity's.",
    )
    max_batch_bytes: Annotated[ByteSize, Field(ge=1024)] | None = Field(
        None,
        description="Upper bound of one batch sent in one transfer (e.g. 256KB); default and "
        "upper limit: what the entity advertises (256 KB Standard, 1 MB Premium), less 512 "
        "bytes kept for the batch envelope. Events of one send that do not fit go in further "
        "batches.",
    )
    send_timeout: Duration = Field(
        "30s",
        validate_default=True,
        gt=0,
        description="How long one send (connecting included) may take before it counts as "
        "failed and is retried.",
    )
    quota_retry_after: Duration = Field(
        "60s",
        validate_default=True,
        gt=0,
        description="Wait at least this long before retrying when Service Bus reports the "
        "entity full (QuotaExceeded) or disabled; such retries are logged as warnings.",
    )

    @field_validator("connection_string")
    @classmethod
    def _usable_connection_string(cls, value: Secret | None) -> Secret | None:
        problem = None if value is None else connection_string_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    def secret_values(self) -> tuple[str | None, str | None]:
        """The connection string and client secret as they read now (files' latest)."""
        return (
            self.connection_text() if self.connection_string is not None else None,
            self.client_secret.get_secret_value() if self.client_secret is not None else None,
        )

    def connection_text(self) -> str:
        """The connection string as it reads now (a file's latest), the emulator flag in
        the only spelling the SDK honours."""
        assert self.connection_string is not None
        return _EMULATOR_FLAG.sub(r"\1true", self.connection_string.get_secret_value())

    @field_validator("fully_qualified_namespace")
    @classmethod
    def _bare_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = re.sub(r"^(sb|amqps?)://", "", value.strip(), flags=re.IGNORECASE).rstrip("/")
        if not _NAMESPACE.fullmatch(host):
            if any(char in value for char in ";="):  # a connection string, in the wrong key
                raise ValueError(
                    "expected a host such as myns.servicebus.windows.net, got key=value "
                    "settings (not shown: they may hold a key); a connection string goes in "
                    "connection_string"
                )
            raise ValueError(f"expected a host such as myns.servicebus.windows.net, got {value!r}")
        return host

    @field_validator("queue", "topic")
    @classmethod
    def _entity_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENTITY_NAME.fullmatch(value):
            raise ValueError(
                f"invalid entity name {value!r} (letters, digits, '.', '-', '_', '/'; "
                "up to 260 characters)"
            )
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> Config:
        if (self.queue is None) == (self.topic is None):
            raise error_at("queue", message="set exactly one of queue or topic")
        if (self.connection_string is None) == (self.fully_qualified_namespace is None):
            raise error_at(
                "connection_string",
                message="set exactly one of connection_string or fully_qualified_namespace",
            )
        if self.connection_string is not None:
            for option in EntraCredential.model_fields:
                if getattr(self, option) is not None:
                    raise error_at(option, message="only with fully_qualified_namespace (Entra ID)")
        return self

    @property
    def where(self) -> str:
        return f"{self.entity_kind} {self.entity}"

    @property
    def entity(self) -> str:
        return self.queue or self.topic or ""

    @property
    def entity_kind(self) -> str:
        return "queue" if self.queue else "topic"
