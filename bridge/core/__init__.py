"""The core both the engine and the sinks build on, and the only part of `bridge` that
`sinks/` imports: the change-feed entry and the event made of it, the sink contract and its
outcomes, the config building blocks every component declares its settings with, secrets
and their redaction, backoff, blocking I/O off the event loop, and Entra ID identities.

Each module is small and private to its topic; this package's names are the public surface.
"""

from bridge import __version__
from bridge.core.azure import CredentialError, EntraIdentity, azure_credential
from bridge.core.backoff import Backoff, parse_retry_after
from bridge.core.blockingio import SerialThread, os_reason
from bridge.core.configspec import (
    Duration,
    EntraCredential,
    RetryConfig,
    StrictModel,
    error_at,
    host_port_problem,
    parse_duration,
    tagged_union,
)
from bridge.core.entry import DEFAULT_PARTITION, Entry, parse_entry, parse_served
from bridge.core.event import STRUCTURED_CONTENT_TYPE, Event, Format
from bridge.core.redact import scrub
from bridge.core.secret import Secret
from bridge.core.sink import (
    DELIVERED,
    BaseSink,
    Delivered,
    Outcome,
    Permanent,
    Sink,
    SinkError,
    SinkFatalError,
    Transient,
)

__all__ = [
    "DEFAULT_PARTITION",
    "DELIVERED",
    "STRUCTURED_CONTENT_TYPE",
    "Backoff",
    "BaseSink",
    "CredentialError",
    "Delivered",
    "Duration",
    "EntraCredential",
    "EntraIdentity",
    "Entry",
    "Event",
    "Format",
    "Outcome",
    "Permanent",
    "RetryConfig",
    "Secret",
    "SerialThread",
    "Sink",
    "SinkError",
    "SinkFatalError",
    "StrictModel",
    "Transient",
    "__version__",
    "azure_credential",
    "error_at",
    "host_port_problem",
    "os_reason",
    "parse_duration",
    "parse_entry",
    "parse_retry_after",
    "parse_served",
    "scrub",
    "tagged_union",
]
