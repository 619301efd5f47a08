"""Fixtures: one mock Kafka cluster (3 brokers, a helper process) for the whole session,
a fresh topic per test, and every injected fault cleared after each test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from tests.peers.kafka_mock import KafkaMock

_names = itertools.count(1)


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaMock]:
    with KafkaMock(brokers=3) as cluster:
        yield cluster


@pytest.fixture
def kafka(kafka_cluster: KafkaMock) -> Iterator[KafkaMock]:
    yield kafka_cluster
    kafka_cluster.reset_faults()
    left = [kafka_cluster.errors_left(broker, "Produce") for broker in (1, 2, 3)]
    assert left == [0, 0, 0], "a test left injected broker errors behind (they cannot be cleared)"


@pytest.fixture
def new_topic(kafka: KafkaMock) -> Callable[..., str]:
    """Factory: a topic of its own for this test (`partitions` partitions)."""

    def create(partitions: int = 6, prefix: str = "dicom") -> str:
        name = f"{prefix}.t{next(_names)}"
        kafka.create_topic(name, partitions)
        return name

    return create
