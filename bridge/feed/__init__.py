"""Client for the DICOM change feed (v1 sequence cursor, v2 time windows, latest).

`FeedClient` does HTTP (retries, auth, parsing, fallbacks); `FeedSource` shares its reads
between routes; `SequenceReader` (v1) and `TimeWindowReader` (v2) turn a stored position
into an endless stream of `Page`s.
"""

from bridge.feed._auth import (
    AZURE_DICOM_SCOPE,
    AuthProvider,
    AzureAuth,
    BearerToken,
    NoAuth,
)
from bridge.feed._client import METADATA_UNAVAILABLE, FeedClient, PageTooLarge
from bridge.feed._errors import FeedError, FeedRequestError, FeedResetError
from bridge.feed._page import Page, Reader
from bridge.feed._parse import MalformedPage, parse_page
from bridge.feed._sequence import SequenceReader
from bridge.feed._source import FeedSource
from bridge.feed._timestamps import TICKS_PER_SECOND, from_ticks, now_ticks, to_ticks
from bridge.feed._timewindow import TimePosition, TimeWindowReader

__all__ = [
    "AZURE_DICOM_SCOPE",
    "METADATA_UNAVAILABLE",
    "TICKS_PER_SECOND",
    "AuthProvider",
    "AzureAuth",
    "BearerToken",
    "FeedClient",
    "FeedError",
    "FeedRequestError",
    "FeedResetError",
    "FeedSource",
    "MalformedPage",
    "NoAuth",
    "Page",
    "PageTooLarge",
    "Reader",
    "SequenceReader",
    "TimePosition",
    "TimeWindowReader",
    "from_ticks",
    "now_ticks",
    "parse_page",
    "to_ticks",
]
