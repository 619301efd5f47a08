"""Standard Webhooks identity and signatures (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) and the request's credentials (bearer token, secret headers).

Signatures come from the `standardwebhooks` reference library, so receivers verifying with
any Standard Webhooks implementation agree with us byte for byte. The spec forbids `.` in
the id (the signed content is `id.timestamp.body`, and a dot would let the three parts be
split differently), but CloudEvents ids contain the feed's host name; the `webhook-id` is
therefore the CloudEvents id with `%` written `%25` and `.` written `%2E`: deterministic,
still readable, and `urllib.parse.unquote` turns it back into the CloudEvents id.

Secrets are read for every request, so one kept in a file (`secret_file`,
`bearer_token_file`, `headers_file`) is used as soon as the file changes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from standardwebhooks import Webhook

from sinks.webhook.config import webhook_secrets_problem

if TYPE_CHECKING:
    from sinks.webhook.config import Config

log = logging.getLogger(__name__)


def webhook_id(event_id: str) -> str:
    """The `webhook-id` of one event: its CloudEvents id without dots."""
    return event_id.replace("%", "%25").replace(".", "%2E")


def batch_webhook_id(event_ids: Sequence[str]) -> str:
    """The `webhook-id` of a batch request: `batch_` + the first 32 hex digits of the
    SHA-256 of its events' webhook-ids joined by spaces. The same events in the same order
    always give the same id; any other composition gives another one."""
    joined = " ".join(webhook_id(event_id) for event_id in event_ids)
    return "batch_" + hashlib.sha256(joined.encode()).hexdigest()[:32]


class Signer:
    """Headers identifying, authenticating and signing one request attempt."""

    def __init__(self, config: Config) -> None:
        self._secret = config.secret
        self._bearer = config.bearer_token
        self._headers = config.headers
        self._signing: tuple[str, list[Webhook]] = ("", [])  # the last good text, its keys
        self._refused: str | None = None  # the last bad one, warned about once

    def __repr__(self) -> str:
        return f"Signer({len(self._keys())} secrets)"

    def credentials(self) -> dict[str, str]:
        """The configured headers and `Authorization: Bearer`, as their secrets read now."""
        headers = {name: value.get_secret_value() for name, value in self._headers.items()}
        if self._bearer is not None:
            headers["authorization"] = f"Bearer {self._bearer.get_secret_value()}"
        return headers

    def headers(self, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
        """The credentials, `webhook-id`, `webhook-timestamp` (this attempt, unix seconds)
        and, when there are secrets, `webhook-signature`: one `v1,<base64>` per secret,
        space-separated."""
        seconds = int(time.time() if now is None else now)
        headers = self.credentials()
        headers |= {"webhook-id": msg_id, "webhook-timestamp": str(seconds)}
        keys = self._keys()
        if keys:
            moment = datetime.fromtimestamp(seconds, UTC)
            text = body.decode()
            headers["webhook-signature"] = " ".join(key.sign(msg_id, moment, text) for key in keys)
        return headers

    def _keys(self) -> list[Webhook]:
        """The signing keys of the secret as it reads now; a rotated file holding something
        else than webhook secrets leaves the previous keys in use, with a warning."""
        text = self._secret.get_secret_value() if self._secret is not None else ""
        if text not in (self._signing[0], self._refused):
            problem = webhook_secrets_problem(text)
            if problem is None:
                self._signing = (text, [Webhook(secret) for secret in text.split()])
            else:
                self._refused = text
                log.warning("webhook secret: %s; signing with the previous one", problem)
        return self._signing[1]
