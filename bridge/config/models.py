"""The config file's other sections (offsets, http) and the whole file, `BridgeConfig`.

Relative paths in the config are relative to the working directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

from pydantic import Field, field_validator, model_validator

from bridge.config.feed import FeedConfig
from bridge.core.configspec import (
    Duration,
    EntraCredential,
    StrictModel,
    error_at,
    tagged_union,
)
from bridge.core.redact import register, register_url
from bridge.core.secret import Secret
from sinks import AnySinkConfig, SinkConfig


class _OffsetStoreConfig(StrictModel):
    """Settings every offset store shares."""

    #: Whether replicas on several hosts can share the store (what `ha:` needs).
    shared: ClassVar[bool] = True

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

    shared: ClassVar[bool] = False

    type: Literal["sqlite"] = Field("sqlite", description="Offset store type.")
    path: Path = Field(Path("state/offsets.db"), description="Database file (directories created).")

    @property
    def where(self) -> str:
        return f"sqlite {self.path}"


_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_SSLMODES = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgresOffsetsConfig(_OffsetStoreConfig):
    """Cursors (and the `ha:` lease) in a PostgreSQL database, 13 or later (Azure Database
    for PostgreSQL included): shared by replicas, no volume needed."""

    type: Literal["postgres"] = Field(description="Offset store type.")
    dsn: Secret = Field(
        description="libpq connection string or URI, e.g. postgresql://bridge@db:5432/bridge "
        "(kept secret: never logged; better without the password, in `password`)."
    )
    password: Secret | None = Field(
        None, description="Password (overrides one in the DSN); `${VAR}` or `password_file`."
    )
    sslmode: _SSLMODES | None = Field(
        None,
        description="TLS as libpq does it (default: the DSN's, else prefer); Azure Database "
        "for PostgreSQL wants require or verify-full.",
    )
    table: str = Field(
        "dicom_bridge_offsets",
        pattern=r"^[a-z_][a-z0-9_]{0,50}$",
        description="Table of the cursors (created if missing); the lease table is this name "
        "with `_leases` appended.",
    )
    connect_timeout: Duration = Field(
        "10s", validate_default=True, gt=0, description="Time allowed to connect."
    )

    @property
    def where(self) -> str:
        return f"postgres table {self.table}"  # the DSN may hold a password

    @field_validator("dsn")
    @classmethod
    def _mask_password(cls, value: Secret) -> Secret:
        text = value.get_secret_value()
        register_url(text)  # a password in a URI is masked alone too
        for found in _KEYWORD_PASSWORD.finditer(text):
            register(found[1].strip("'"))
        return value


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

    @property
    def where(self) -> str:
        return f"azure_blob container {self.container}"

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


class HaConfig(StrictModel):
    """Replicas: one active bridge per feed, by a lease kept in the offset store."""

    lease_ttl: Duration = Field(
        "15s",
        validate_default=True,
        ge=1,
        description="How long a lease lasts unless renewed: a dead leader is replaced within "
        "this plus one renew interval. The leader stops delivering before it expires by "
        "its own clock if it cannot renew.",
    )
    renew_interval: Duration | None = Field(
        None,
        gt=0,
        description="How often the leader renews and standbys try to take over (default: a "
        "third of lease_ttl). Must be under half of lease_ttl.",
    )

    @property
    def interval(self) -> float:
        return self.renew_interval or self.lease_ttl / 3

    @model_validator(mode="after")
    def _renew_often_enough(self) -> HaConfig:
        if self.interval * 2 > self.lease_ttl:
            raise error_at(
                "renew_interval",
                message=f"must be at most half of lease_ttl ({self.lease_ttl / 2:g}s)",
            )
        return self


if TYPE_CHECKING:  # the union pydantic builds at runtime, as checkers see it
    OffsetsConfig: TypeAlias = SqliteOffsetsConfig | PostgresOffsetsConfig | AzureBlobOffsetsConfig
else:
    OffsetsConfig = tagged_union(
        [SqliteOffsetsConfig, PostgresOffsetsConfig, AzureBlobOffsetsConfig], default="sqlite"
    )


class HttpConfig(StrictModel):
    """The metrics, health and status-page listener."""

    listen: str = Field(
        "127.0.0.1:9464", description="host:port to listen on ([::1]:9464 for IPv6)."
    )
    unready_after: Duration = Field(
        "60s",
        validate_default=True,
        ge=0,
        description="How long a problem (the feed failing, a sink unreachable) must last "
        "before `/readyz` answers 503: throttling or a broker's restart is not an outage. A "
        "stopped route or a failing offset store is unready at once.",
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


class LogsConfig(StrictModel):
    """What the bridge logs on its own, at INFO, beyond the errors."""

    progress_interval: Duration = Field(
        "30s",
        validate_default=True,
        gt=0,
        description="While a route is behind, how often a progress line (position, lag, "
        "entries/s, ETA) is logged; not when stderr is a terminal, which shows a live line.",
    )
    summary_interval: Duration = Field(
        "30s",
        validate_default=True,
        gt=0,
        description="Repeated warnings (a dead letter, a retry, a library's reconnect) are "
        "logged once, then counted: one `N more ... in the last <interval>` line per interval.",
    )


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
        None, description="Metrics, health and status-page listener; off when absent."
    )
    logs: LogsConfig = Field(
        default_factory=LogsConfig, description="Progress lines and the aggregation of warnings."
    )
    ha: HaConfig | None = Field(
        None,
        description="Run as replicas: only the holder of the feed's lease delivers, the others "
        "stand by; needs a shared offset store (postgres or azure_blob). Off when absent.",
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

    @model_validator(mode="after")
    def _shared_store_for_ha(self) -> BridgeConfig:
        if self.ha is not None and not self.offsets.shared:
            raise error_at(
                "ha",
                message="needs a shared offset store (offsets.type: postgres or azure_blob); "
                "sqlite is single-host",
            )
        return self

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
        _one_writer_per_file(sinks)
        return sinks


def _one_writer_per_file(sinks: list[Any]) -> None:
    """Two file sinks (or dead-letter targets) appending to one file would interleave their
    lines, and each would rotate and reopen the other's file: refused."""
    writers: dict[Path, str] = {}
    for index, sink in enumerate(sinks):
        targets = [((index, "path"), sink), ((index, "dead_letter", "path"), sink.dead_letter)]
        for at, target in targets:
            if target is None or target.type != "file":
                continue
            key = Path(os.path.abspath(target.path))
            where = f"sinks[{index}]." + ".".join(str(part) for part in at[1:])
            if key in writers:
                message = (
                    f"{target.path} is also written by {writers[key]}: "
                    "each file sink needs a file of its own"
                )
                raise error_at(*at, message=message)
            writers[key] = where
