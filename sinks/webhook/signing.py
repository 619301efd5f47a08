"""Standard Webhooks identity and signatures: `webhook-id`, `webhook-timestamp`,
`webhook-signature`.

Signatures come from the `standardwebhooks` reference library, so receivers verifying with
any Standard Webhooks implementation agree with us byte for byte. The spec forbids `.` in
the id (the signed content is `id.timestamp.body`, and a dot would let the three parts be
split differently), but CloudEvents ids contain the feed's host name; the `webhook-id` is
therefore the CloudEvents id with `%` written `%25` and `.` written `%2E`: deterministic,
still readable, and `urllib.parse.unquote` turns it back into the CloudEvents id.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import SecretStr
from standardwebhooks import Webhook


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
    """Headers identifying and signing one request attempt with every configured secret."""

    def __init__(self, secrets: Sequence[SecretStr]) -> None:
        self._keys = [Webhook(secret.get_secret_value()) for secret in secrets]

    def __repr__(self) -> str:
        return f"Signer({len(self._keys)} secrets)"

    def headers(self, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
        """`webhook-id`, `webhook-timestamp` (this attempt, unix seconds) and, when there are
        secrets, `webhook-signature`: one `v1,<base64>` per secret, space-separated."""
        seconds = int(time.time() if now is None else now)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(seconds)}
        if self._keys:
            moment = datetime.fromtimestamp(seconds, UTC)
            text = body.decode()
            headers["webhook-signature"] = " ".join(
                key.sign(msg_id, moment, text) for key in self._keys
            )
        return headers
