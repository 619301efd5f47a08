"""Fixtures of the webhook sink's integration tests: real receivers on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.webhook.helpers import SECRET
from tests.peers.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    """Factory: `receiver(secrets=[...], **options)` -> a started receiver (verifying with
    `SECRET` unless told otherwise); every one started is stopped when the test ends."""
    started: list[WebhookReceiver] = []

    def start(secrets: list[str] | None = None, **options: Any) -> WebhookReceiver:
        peer = WebhookReceiver([SECRET] if secrets is None else secrets, **options)
        started.append(peer)
        return peer.start()

    yield start
    for peer in started:
        peer.stop()
