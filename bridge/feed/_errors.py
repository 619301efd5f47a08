"""Errors the feed client raises. Each message is one line, without secrets."""

from __future__ import annotations


class FeedError(Exception):
    """The feed cannot be read and retrying will not help."""


class FeedRequestError(FeedError):
    """The service refused a request (400/401/403/404...): configuration or permission."""

    def __init__(self, status: int, url: str, detail: str) -> None:
        self.status = status
        self.url = url
        super().__init__(f"{status} {_REASONS.get(status, 'error')} from GET {url}: {detail}")


class TokenUnavailable(Exception):
    """No token now, though the identity was not refused (its endpoint could not be
    reached): retried like a request that got no answer."""


class FeedResetError(FeedError):
    """The stored cursor is ahead of the feed: the DICOM service was reset or restored."""


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    410: "Gone",
    415: "Unsupported Media Type",
    424: "Failed Dependency",
}
