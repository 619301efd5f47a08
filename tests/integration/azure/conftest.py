"""Fixtures of the Azure identity tests: the AMQP peer (Service Bus) and a throwaway CA for
the fake Entra ID token endpoint."""

from __future__ import annotations

from tests.integration.servicebus.conftest import peer  # noqa: F401
from tests.security.conftest import pki  # noqa: F401
