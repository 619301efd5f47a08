"""Fuzz fixtures: the bridge's retry warnings are expected by the thousand here."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _quiet_bridge_logs() -> Iterator[None]:
    logger = logging.getLogger("bridge")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)
