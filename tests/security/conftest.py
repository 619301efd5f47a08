"""Fixtures of the security tests: the real peers of the integration tests (one mock Kafka
cluster per session, an AMQP peer and webhook receivers per test), a throwaway CA, and the
bridge's logs captured as the CLI writes them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bridge.runtime.logs import JsonFormatter, TextFormatter, setup_logging
from tests.integration.kafka.conftest import kafka, kafka_cluster, new_topic  # noqa: F401
from tests.integration.servicebus.conftest import peer  # noqa: F401
from tests.integration.webhook.certs import Pki, make_pki
from tests.integration.webhook.conftest import receiver  # noqa: F401


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a server certificate for 127.0.0.1, as PEM files."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The bridge's logging at DEBUG, as the CLI sets it up, into one buffer in both the
    text and the JSON format; restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    setup_logging("DEBUG")
    handlers = [logging.StreamHandler(buffer), logging.StreamHandler(buffer)]
    handlers[0].setFormatter(TextFormatter())
    handlers[1].setFormatter(JsonFormatter())
    root.handlers[:] = handlers
    yield buffer
    root.handlers[:], level = saved
    root.setLevel(level)
