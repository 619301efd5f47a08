"""Fixtures of the security tests: the real peers of the integration tests (one mock Kafka
cluster per session, an AMQP peer and webhook receivers per test) and a throwaway CA."""

from __future__ import annotations

import pytest

from tests.integration.kafka.conftest import kafka, kafka_cluster, new_topic  # noqa: F401
from tests.integration.servicebus.conftest import peer  # noqa: F401
from tests.integration.webhook.certs import Pki, make_pki
from tests.integration.webhook.conftest import receiver  # noqa: F401


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a server certificate for 127.0.0.1, as PEM files."""
    return make_pki(tmp_path_factory.mktemp("pki"))
