"""The chaos bridge's config: the simulator's feed (bearer token, metadata on) and four
routes, file, Kafka, Service Bus and webhook, each with a file dead-letter target and a
canary in every secret it can hold; metrics on a loopback port."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.helpers import write_config
from tests.security import canaries

SINKS = ("file", "kafka", "servicebus", "webhook")
#: The webhook route leaves updates out: one route whose filter advances its cursor too.
WEBHOOK_ACTIONS = ("Create", "Delete")
RETRY = {"initial": "50ms", "max": "1s"}
#: Seconds a feed request may take (the feed-faults scenario's latency spikes outlast it).
FEED_TIMEOUT = 5.0
#: Events per webhook request (the receiver shares a core with the harness).
WEBHOOK_BATCH = 20


@dataclass(frozen=True)
class Tuning:
    """The settings scenarios vary."""

    max_pending: int = 1000
    prefetch: int = 4
    drain_timeout: float = 5.0  # seconds
    rotate_bytes: str = "2MB"


@dataclass(frozen=True)
class Endpoints:
    feed_url: str
    kafka_bootstrap: str
    topic: str
    servicebus_connection: str  # with the canary SAS key
    queue: str
    webhook_url: str
    metrics_port: int


def admitted(entry: dict[str, Any], sink: str) -> bool:
    """Whether `sink`'s route delivers this feed entry (else it is filtered out)."""
    return sink != "webhook" or entry["action"] in WEBHOOK_ACTIONS


def write(
    path: Path,
    endpoints: Endpoints,
    tuning: Tuning,
    *,
    files: Path,
    state: Path,
    dead_letters: Path,
) -> Path:
    common = {"max_pending": tuning.max_pending, "retry": RETRY}

    def route(name: str, **sink: Any) -> dict[str, Any]:
        dead_letter = {"type": "file", "path": str(dead_letters / f"{name}.jsonl")}
        return {"name": name, **sink, **common, "dead_letter": dead_letter}

    sinks = [
        route(
            "file", type="file", path=str(files / "events.jsonl"), rotate_bytes=tuning.rotate_bytes
        ),
        route(
            "kafka",
            type="kafka",
            bootstrap_servers=endpoints.kafka_bootstrap,
            topic=endpoints.topic,
            # a canary where a SASL password goes (the mock cluster ignores it); reconnect
            # within a second of a broker's return
            producer={
                "sasl.password": canaries.SASL_PASSWORD.value,
                "reconnect.backoff.max.ms": 1000,
            },
        ),
        route(
            "servicebus",
            type="servicebus",
            connection_string=endpoints.servicebus_connection,
            queue=endpoints.queue,
            send_timeout="5s",
        ),
        route(
            "webhook",
            type="webhook",
            url=endpoints.webhook_url,
            secret=canaries.WEBHOOK_SECRET.value,
            bearer_token=canaries.WEBHOOK_BEARER.value,
            batch=WEBHOOK_BATCH,
            timeout="5s",
            filter={"actions": list(WEBHOOK_ACTIONS)},
        ),
    ]
    return write_config(
        path,
        endpoints.feed_url,
        sinks,
        feed={
            "include_metadata": True,
            "prefetch": tuning.prefetch,
            "timeout": f"{FEED_TIMEOUT:g}s",
            "retry": RETRY,
            "auth": {"type": "bearer", "token": canaries.FEED_TOKEN.value},
        },
        offsets={"path": str(state / "offsets.db")},
        http={"listen": f"127.0.0.1:{endpoints.metrics_port}", "unready_after": "0s"},
        drain_timeout=f"{tuning.drain_timeout:g}s",
    )
