"""How the config becomes the running parts: the feed's client, reader and lookup, its
authentication, and each route with its sink, dead-letter target and formatter. Used by
the pipeline and by the operator commands, which build the same parts for one task."""

from __future__ import annotations

from collections.abc import Callable

from bridge.config import BridgeConfig, FeedConfig
from bridge.core.azure import azure_credential
from bridge.core.backoff import Backoff
from bridge.delivery.cursor import FeedLookup
from bridge.delivery.format import Formatter
from bridge.delivery.route import Route
from bridge.feed import (
    AuthProvider,
    AzureAuth,
    BearerToken,
    FeedClient,
    FeedSource,
    NoAuth,
    Reader,
    SequenceReader,
    TimeWindowReader,
)
from bridge.offsets import OffsetStore
from sinks import SinkConfig, create_sink


def build_route(
    config: BridgeConfig,
    sink_config: SinkConfig,
    *,
    reader: Reader,
    store: OffsetStore,
    lookup: FeedLookup | None = None,
    on_change: Callable[[], None] | None = None,
    on_send: Callable[[str, float], None] | None = None,
) -> Route:
    """A route for one sink of `config`: its sink, dead-letter target, formatter, cursor."""
    dead_letter = None
    if sink_config.dead_letter is not None:
        dead_letter = create_sink(sink_config.dead_letter, name=f"{sink_config.name}.dead_letter")
    return Route(
        name=sink_config.name,
        config=sink_config,
        sink=create_sink(sink_config),
        dead_letter=dead_letter,
        reader=reader,
        formatter=Formatter(config.feed.url, sink_config.format, config.feed.key),
        store=store,
        feed_key=config.feed.key,
        lookup=lookup,
        commit_interval=config.offsets.commit_interval,
        on_change=on_change or _ignore,
        on_send=on_send or _ignore,
    )


def _ignore(*args: object) -> None:
    return None


def feed_client(
    feed: FeedConfig,
    on_request: Callable[[str, float], None] | None = None,
    *,
    helper: bool = False,
) -> FeedClient:
    """The feed's HTTP client; `helper` (when `feed.http_helper` allows) moves its requests
    to a helper process, which pays off for a running bridge, not for one probe."""
    return FeedClient(
        feed.url,
        feed.api_version,
        auth=auth_provider(feed),
        timeout=feed.timeout,
        max_page_bytes=feed.max_page_bytes,
        max_requests_per_second=feed.max_requests_per_second,
        backoff=Backoff(feed.retry.initial, feed.retry.max),
        fallback_after=feed.metadata_retries,
        max_connections=feed.prefetch + 2,  # httpcore scans every pooled connection per request
        helper=helper and feed.http_helper,
        on_request=on_request or _ignore,
    )


def feed_lookup(feed: FeedConfig, client: FeedClient) -> FeedLookup:
    """Single-entry reads for cursors through `client`; a v2 feed looks sequences up through
    the v1 API of the same service."""
    v1 = feed.model_copy(update={"api_version": "v1", "page_size": 100})
    return FeedLookup(client, lambda: feed_client(v1))


def feed_reader(feed: FeedConfig, source: FeedSource) -> Reader:
    if feed.api_version == "v2":
        return TimeWindowReader(
            source, poll_interval=feed.poll_interval, safety_lag=feed.safety_lag
        )
    return SequenceReader(source, prefetch=feed.prefetch, poll_interval=feed.poll_interval)


def auth_provider(feed: FeedConfig) -> AuthProvider:
    auth = feed.auth
    if auth.type == "bearer":
        assert auth.token is not None  # BearerAuth's validation requires it
        return BearerToken(auth.token)
    if auth.type == "azure":
        return AzureAuth(azure_credential(**auth.credential_options()), auth.scope)
    return NoAuth()
