"""The config file's other sections (offsets, http) and the whole file, `BridgeConfig`.

Relative paths in the config are relative to the working directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import Field, field_validator, model_validator

from bridge.config.feed import FeedConfig
from bridge.core.configspec import (
    Duration,
    EntraCredential,
    StrictModel,
    error_at,
    tagged_union,
)
from bridge.core.secret import Secret
from sinks import AnySinkConfig, SinkConfig


class _OffsetStoreConfig(StrictModel):
    """Settings every offset store shares."""

    commit_interval: Duration = Field(
        "1s",
        validate_default=True,
        gt=0,
        description="How often a route commits its cursor while delivering (also on "
        "shutdown and when caught up). Longer means fewer writes and more duplicates after "
        "a crash.",
    )


class SqliteOffsetsConfig(_OffsetStoreConfig):
    """Cursors in an embedded sqlite file (WAL, fsync on each commit)."""

    type: Literal["sqlite"] = Field("sqlite", description="Offset store type.")
    path: Path = Field(Path("state/offsets.db"), description="Database file (directories created).")


#: Blob container names: 3-63 lowercase letters, digits and single hyphens.
_CONTAINER = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class AzureBlobOffsetsConfig(_OffsetStoreConfig, EntraCredential):
    """Cursors as small JSON blobs in Azure Blob Storage, each write a compare-and-swap on
    the blob's ETag; with `ha:`, the feed's lease is a blob beside them. Authenticated by a
    connection string, or by Microsoft Entra ID with account_url (the credential options
    below; none set: DefaultAzureCredential)."""

    type: Literal["azure_blob"] = Field(description="Offset store type.")
    container: str = Field(
        description="Blob container of the cursors (created if missing, which needs the "
        "Storage Blob Data Contributor role on the account; on the container, create it "
        "beforehand)."
    )
    prefix: str = Field(
        "dicom-bridge",
        description="Folder of the blobs in the container: <prefix>/offsets/<feed>/<sink>.json "
        "and <prefix>/leases/<feed>.json. Bridges sharing a container keep apart by it.",
    )
    connection_string: Secret | None = Field(
        None,
        description="Storage account connection string (use ${VAR} or "
        "connection_string_file), e.g. DefaultEndpointsProtocol=https;AccountName=...;"
        "AccountKey=...;EndpointSuffix=core.windows.net. Either this or account_url.",
    )
    account_url: str | None = Field(
        None,
        description="Blob endpoint of the account (https://<account>.blob.core.windows.net), "
        "authenticated with Microsoft Entra ID; needs the Storage Blob Data Contributor role.",
    )
    auth: Literal["azure"] | None = Field(
        None,
        description="With account_url: azure (Microsoft Entra ID, the only choice there; may "
        "be left out).",
    )
    timeout: Duration = Field(
        "10s",
        validate_default=True,
        gt=0,
        description="Deadline of one request to the storage service; a request that fails or "
        "times out is retried with backoff (commits wait; nothing is lost).",
    )

    @field_validator("container")
    @classmethod
    def _container_name(cls, value: str) -> str:
        if not _CONTAINER.fullmatch(value):
            raise ValueError(
                f"invalid container name {value!r} (3-63 lowercase letters, digits and "
                "single hyphens, starting and ending with a letter or digit)"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if not value or len(value) > 200:
            raise ValueError("must be 1-200 characters (a folder such as dicom-bridge)")
        return value

    @field_validator("connection_string")
    @classmethod
    def _usable_connection_string(cls, value: Secret | None) -> Secret | None:
        if value is not None:
            keys = {
                part.split("=", 1)[0].strip().lower()
                for part in value.get_secret_value().split(";")
                if "=" in part
            }
            if not keys & {"accountname", "blobendpoint"}:
                raise ValueError(
                    "not a storage connection string (no AccountName= or BlobEndpoint=; "
                    "the value is not shown)"
                )
        return value

    @field_validator("account_url")
    @classmethod
    def _account_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(char in value for char in ";="):
            raise ValueError(
                "expected a URL such as https://myaccount.blob.core.windows.net, got key=value "
                "settings (not shown: they may hold a key); a connection string goes in "
                "connection_string"
            )
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError(
                f"expected a URL such as https://myaccount.blob.core.windows.net, got {value!r}"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_way_in(self) -> AzureBlobOffsetsConfig:
        if (self.connection_string is None) == (self.account_url is None):
            raise error_at(
                "connection_string", message="set exactly one of connection_string or account_url"
            )
        if self.connection_string is not None:
            for option in ("auth", *EntraCredential.model_fields):
                if getattr(self, option) is not None:
                    raise error_at(option, message="only with account_url (Entra ID)")
        return self


if TYPE_CHECKING:  # the union pydantic builds at runtime, as checkers see it
    OffsetsConfig: TypeAlias = SqliteOffsetsConfig | AzureBlobOffsetsConfig
else:
    OffsetsConfig = tagged_union([SqliteOffsetsConfig, AzureBlobOffsetsConfig], default="sqlite")


class HttpConfig(StrictModel):
    """The metrics and health listener."""

    listen: str = Field(
        "127.0.0.1:9464", description="host:port to listen on ([::1]:9464 for IPv6)."
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _split_host_port(value)
        return value

    @property
    def host(self) -> str:
        return _split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_host_port(self.listen)[1]


def _split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid address {value!r} (use host:port, e.g. 127.0.0.1:9464)")
    return host, int(port)


class BridgeConfig(StrictModel):
    """The whole config file."""

    feed: FeedConfig = Field(description="The change feed to read.")
    offsets: OffsetsConfig = Field(
        default_factory=SqliteOffsetsConfig, description="Where each route's cursor is kept."
    )
    sinks: list[AnySinkConfig] = Field(
        description="The routes: one sink each, with its own cursor, filter and retries."
    )
    http: HttpConfig | None = Field(
        None, description="Metrics and health listener; off when absent."
    )
    drain_timeout: Duration = Field(
        "10s",
        validate_default=True,
        description="On SIGTERM/SIGINT, how long in-flight events may take to be delivered "
        "and committed before the bridge exits anyway (they are re-sent after a restart).",
    )

    def route(self, name: str) -> SinkConfig:
        """The sink (route) called `name`; ValueError naming the routes there are."""
        for sink in self.sinks:
            if sink.name == name:
                return sink
        names = ", ".join(sink.name for sink in self.sinks)
        raise ValueError(f"no sink named {name!r} in the config (sinks: {names})")

    @field_validator("sinks")
    @classmethod
    def _named_uniquely(cls, sinks: list[Any]) -> list[Any]:
        if not sinks:
            raise ValueError("at least one sink is required")
        first: dict[str, int] = {}
        for index, sink in enumerate(sinks):
            if sink.name in first:
                message = f"duplicate sink name {sink.name!r} (also sinks[{first[sink.name]}])"
                raise error_at(index, "name", message=message)
            first[sink.name] = index
        return sinks
