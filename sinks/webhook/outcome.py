"""How the receiver's answer (or its silence) becomes an outcome.

Following the Standard Webhooks and CloudEvents webhook specs:
- 2xx: delivered.
- 408, 429, 5xx, connection errors, timeouts: transient; the route retries with backoff
  and jitter, waiting at least `Retry-After` when the receiver sent one.
- 3xx: not followed (a receiver must not move an endpoint silently). Transient with the
  `Location` in the reason: an operator fixes `url`; dead-lettering the whole feed until
  then would be worse.
- 401, 403: the receiver refuses our credentials for every event alike, and 410 says the
  endpoint is gone: `SinkFatalError`, the route stops with its cursor kept.
- Other 4xx: this event is refused (`Permanent`, dead-lettered) with the status and an
  excerpt of the response body.

Reasons name the endpoint by `display_url`, without query string and user info.
"""

from __future__ import annotations

import httpx

from bridge.core.backoff import parse_retry_after
from bridge.core.redact import scrub
from bridge.core.sink import DELIVERED, Outcome, Permanent, SinkFatalError, Transient

EXCERPT_CHARS = 200

FATAL_HINTS = {
    401: "the receiver refuses our credentials; check bearer_token, headers and secret",
    403: "the receiver refuses our credentials; check bearer_token, headers and secret",
    410: "the endpoint is gone; fix url and restart (the cursor stays at the last delivered entry)",
}


def display_url(url: str | httpx.URL) -> str:
    """`url` without user info, query string and fragment (they often carry keys)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


def excerpt(body: bytes) -> str:
    """The start of a response body on one line, secrets it echoes masked before it is cut
    (a cut would leave part of one)."""
    text = " ".join(scrub(body[: EXCERPT_CHARS * 4].decode(errors="replace")).split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


def classify(response: httpx.Response, body: bytes, where: str) -> Outcome:
    """The outcome of one answered request (`body`: the start of its body); raises
    `SinkFatalError` for 401, 403, 410."""
    status = response.status_code
    if 200 <= status < 300:
        return DELIVERED
    what = f"{where} answered {status} {response.reason_phrase}".rstrip()
    if status in FATAL_HINTS:
        raise SinkFatalError(f"{what}: {FATAL_HINTS[status]}")
    if 300 <= status < 400:
        target = _redirect_target(response)
        return Transient(
            f"{what} redirecting to {target}; redirects are not followed: set url to the "
            "final address"
        )
    text = excerpt(body)
    detail = f"{what}: {text}" if text else what
    if 400 <= status < 500 and status not in (408, 429):
        return Permanent(detail)
    return Transient(detail, parse_retry_after(response.headers.get("retry-after")))


def _redirect_target(response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        return "nowhere (no Location header)"
    try:
        return display_url(response.url.join(location))
    except httpx.InvalidURL:
        return "an invalid Location"


def failure(exc: Exception, where: str, timeout: float) -> Transient:
    """A request that got no (complete) answer."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return Transient(f"{where}: no complete answer within {timeout:g}s")
    return Transient(f"{where}: {type(exc).__name__}: {exc or 'connection failed'}")
