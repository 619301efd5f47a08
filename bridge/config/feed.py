"""The `feed` section: the DICOM service, how to read its change feed, how to authenticate,
and the feed's name (the key of its cursors and the prefix of event ids)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    ByteSize,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge.core.configspec import (
    Duration,
    EntraCredential,
    RetryConfig,
    StrictModel,
    host_port_problem,
    tagged_union,
)
from bridge.core.secret import Secret


class NoAuth(StrictModel):
    """No authentication (e.g. the open-source DICOM server on a private network)."""

    type: Literal["none"] = Field("none", description="Authentication type.")


class BearerAuth(StrictModel):
    """A static bearer token, given inline or read from a file."""

    type: Literal["bearer"] = Field(description="Authentication type.")
    token: Secret | None = Field(None, description="The token (use ${VAR}, or token_file).")

    @model_validator(mode="after")
    def _token_given(self) -> BearerAuth:
        if self.token is None:
            raise ValueError("token or token_file is required")
        return self


class AzureAuth(EntraCredential):
    """Microsoft Entra ID tokens. Without other fields: DefaultAzureCredential."""

    type: Literal["azure"] = Field(description="Authentication type.")
    scope: str = Field(
        "https://dicom.healthcareapis.azure.com/.default",
        description="Token scope of the DICOM service.",
    )


if TYPE_CHECKING:  # the union pydantic builds at runtime, as checkers see it
    AuthConfig: TypeAlias = NoAuth | BearerAuth | AzureAuth
else:
    AuthConfig = tagged_union([NoAuth, BearerAuth, AzureAuth])

PAGE_SIZE_LIMITS = {"v1": 100, "v2": 200}
_FEED_NAME = re.compile(r"[A-Za-z0-9_.:\[\]-]{1,253}")
_TRAILING_ROUTE = re.compile(r"v\d+(\.\d+)?(-prerelease)?|changefeed|latest", re.IGNORECASE)


class FeedConfig(StrictModel):
    """The DICOM service whose change feed is read."""

    url: str = Field(
        description="Base URL of the DICOM service, without a version segment (e.g. "
        "https://myws-mydicom.dicom.azurehealthcareapis.com)."
    )
    name: str | None = Field(
        None,
        description="The feed's identity: the key of the routes' cursors in the offset store "
        "and the prefix of event ids (`<name>/<partition>/<sequence>`). Default: the URL's "
        "host, lowercased, with its port unless it is the scheme's default. Keep it when the "
        "URL changes (a private endpoint, a custom domain): cursors and ids carry over.",
    )
    api_version: Literal["v1", "v2"] = Field(
        "v1", description="v1: sequence cursor; v2: closed time windows."
    )
    page_size: int = Field(
        None,
        validate_default=True,
        description="Entries per request: v1 1..100 (default 100), v2 1..200 (default 200).",
    )
    include_metadata: bool = Field(
        False,
        description="Fetch each instance's DICOM metadata with its entry. Off by default: "
        "thin events are cheaper and carry no PHI.",
    )
    poll_interval: Duration = Field(
        "5s", validate_default=True, gt=0, description="Wait between polls once caught up."
    )
    safety_lag: Duration = Field(
        "60s",
        validate_default=True,
        description="v2 only: read time windows only up to this long ago, so entries still "
        "being committed are not skipped.",
    )
    prefetch: int = Field(
        8, ge=1, le=64, description="v1 pages (sequence windows) fetched concurrently."
    )
    http_helper: bool = Field(
        True,
        description="Make the feed's HTTP requests in a helper process, so reading the feed "
        "and forwarding its entries use two CPU cores (catch-up about twice as fast); false "
        "keeps the bridge in one process.",
    )
    timeout: Duration = Field(
        "30s",
        validate_default=True,
        gt=0,
        description="Deadline of each request to the feed, from connecting to the end of the "
        "answer: an answer still arriving then is cut and the request retried.",
    )
    max_page_bytes: Annotated[ByteSize, Field(ge=64 * 1024)] = Field(
        "4MB",
        validate_default=True,
        description="Largest answer the bridge reads, decoded (gzip included), checked while "
        "it streams in. A window over it is read again in smaller windows, down to one "
        "entry; one entry over it is sent without metadata (flagged metadata-unavailable); "
        "one still over it without metadata is retried. Memory for answers stays below "
        "about (2 x prefetch + 4) x this (see Operations in the README).",
    )
    max_requests_per_second: float | None = Field(
        None,
        gt=0,
        description="Upper bound of the request rate to the feed, every request included "
        "(retries, fallbacks, polls; no burst). Off by default: the service's 429s are "
        "honoured anyway.",
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig, description="Backoff between retries of failed requests."
    )
    metadata_retries: int = Field(
        3,
        ge=1,
        description="Attempts of a page failing with include_metadata before it is fetched "
        "without metadata.",
    )
    auth: AuthConfig = Field(
        default_factory=NoAuth, description="Authentication: none, bearer or azure."
    )

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        # Messages show the URL without user info, query and fragment: they may hold keys.
        shown = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid URL {shown!r} (expected http(s)://host[:port][/path])")
        problem = host_port_problem(parts)
        if problem:
            raise ValueError(f"invalid URL {shown!r} ({problem})")
        if "@" in parts.netloc:
            raise ValueError(
                f"invalid URL {shown!r} with user info (credentials go in feed.auth: the URL "
                "is logged and is every event's source)"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"invalid URL {shown!r} (no query or fragment allowed)")
        segments = parts.path.rstrip("/").split("/")
        base = list(segments)
        while base and _TRAILING_ROUTE.fullmatch(base[-1]):
            base.pop()
        if len(base) < len(segments):
            extra = "/" + "/".join(segments[len(base) :])
            suggestion = f"{parts.scheme}://{parts.netloc}{'/'.join(base)}"
            raise ValueError(
                f"must be the service's base URL, without {extra!r} (api_version selects "
                f"the version): use {suggestion!r}"
            )
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

    @field_validator("name")
    @classmethod
    def _name_fits_an_id(cls, value: str | None) -> str | None:
        if value is not None and not _FEED_NAME.fullmatch(value):
            raise ValueError(
                f"invalid feed name {value!r}: use letters, digits and . _ - : [ ] only "
                "(it prefixes event ids, whose parts are separated by /), e.g. mydicom"
            )
        return value

    @model_validator(mode="after")
    def _default_name(self) -> FeedConfig:
        if self.name is None:
            self.name = default_feed_name(self.url)
        return self

    @property
    def key(self) -> str:
        """The feed's name, whether set or the default (validation fills `name` in): the
        key of its cursors and the prefix of its event ids."""
        return self.name or default_feed_name(self.url)

    @field_validator("page_size", mode="before")
    @classmethod
    def _default_page_size(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            return value
        return PAGE_SIZE_LIMITS.get(info.data.get("api_version", ""), 100)

    @field_validator("page_size")
    @classmethod
    def _page_size_in_range(cls, value: int, info: ValidationInfo) -> int:
        version = info.data.get("api_version", "")
        limit = PAGE_SIZE_LIMITS.get(version)
        if limit and not 1 <= value <= limit:
            raise ValueError(
                f"must be between 1 and {limit} for api_version {version}, got {value}"
            )
        return value


_DEFAULT_PORTS = {"http": 80, "https": 443}


def default_feed_name(url: str) -> str:
    """`feed.name` when none is set: the URL's host, lowercased, and its port unless it is
    the scheme's default, so spellings of one URL (`LOCALHOST`, `:443`) name one feed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if parts.port is None or parts.port == _DEFAULT_PORTS.get(parts.scheme):
        return host
    return f"{host}:{parts.port}"
