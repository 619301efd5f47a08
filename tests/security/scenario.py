"""Bridge configs whose every secret is a canary, and the CLI run at its most talkative.

`canary_sinks` routes the feed to each real peer with every secret a sink accepts set to a
canary (`entra` gives the Entra ID options, `in_files` moves secrets to `*_file` files);
`cli` runs `dicom-bridge --log-level DEBUG --log-format FORMAT ...` and returns the
completed process after scanning everything it printed (stdout and stderr) for them.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from sinks.kafka.config import is_secret_property
from tests.e2e.helpers import run_bridge, write_config
from tests.integration.webhook.helpers import FAST_RETRY
from tests.security import canaries

QUEUE = "dicom-changes"


def canary_sinks(
    out: Path,
    *,
    webhook_url: str | None = None,
    basic_webhook_url: str | None = None,
    kafka_bootstrap: str | None = None,
    kafka_properties: dict[str, str] | None = None,
    topic: str | None = None,
    amqp_address: str | None = None,
) -> list[dict[str, Any]]:
    """A file route (the control) plus a route per peer given, each with its canaries and
    a file dead-letter target; `kafka_properties` are added to the Kafka producer's."""

    def route(name: str, **settings: Any) -> dict[str, Any]:
        dead_letter = {"type": "file", "path": str(out / f"{name}-dead-letters.jsonl")}
        return {"name": name, "retry": FAST_RETRY, "dead_letter": dead_letter, **settings}

    sinks = [route("archive", type="file", path=str(out / "events.jsonl"))]
    if webhook_url is not None:
        sinks.append(route("hooks", type="webhook", **canaries.webhook_options(webhook_url)))
    if basic_webhook_url is not None:
        options = canaries.webhook_options(basic_webhook_url, user_info=True)
        sinks.append(route("basic", type="webhook", **options))
    if kafka_bootstrap is not None:
        producer = canaries.kafka_producer(
            **{"message.timeout.ms": "10000", **(kafka_properties or {})}
        )
        sinks.append(
            route(
                "events",
                type="kafka",
                bootstrap_servers=kafka_bootstrap,
                topic=topic,
                producer=producer,
                close_timeout="1s",
            )
        )
    if amqp_address is not None:
        connection_string = canaries.servicebus_connection_string(amqp_address)
        sinks.append(
            route(
                "queue",
                type="servicebus",
                connection_string=connection_string,
                queue=QUEUE,
                send_timeout="5s",
            )
        )
    return sinks


SECRET_KEYS = ("token", "client_secret", "secret", "bearer_token", "connection_string")


def in_files(settings: dict[str, Any], directory: Path) -> dict[str, Any]:
    """`settings` (a feed's `auth`, a sink) with every secret moved to a file ending in a
    newline, named by `<key>_file` (`headers_file` and `producer_file` for the secret
    headers and producer properties), dead-letter target included."""
    directory.mkdir(parents=True, exist_ok=True)

    def kept(value: str) -> str:
        path = directory / f"secret-{len(list(directory.iterdir()))}"
        path.write_text(value + "\n")
        return str(path)

    moved = dict(settings)
    for key in SECRET_KEYS:
        if isinstance(moved.get(key), str):
            moved[f"{key}_file"] = kept(moved.pop(key))
    if "headers" in moved:
        moved["headers_file"] = {name: kept(value) for name, value in moved.pop("headers").items()}
    if "producer" in moved:
        producer = moved["producer"] = dict(moved["producer"])
        secrets = [name for name in producer if is_secret_property(name)]
        moved["producer_file"] = {name: kept(producer.pop(name)) for name in secrets}
    if isinstance(moved.get("dead_letter"), dict):
        moved["dead_letter"] = in_files(moved["dead_letter"], directory)
    return moved


def entra(secret: str) -> dict[str, str]:
    """`client_secret` options of the feed's `auth` or of a Service Bus sink."""
    return {
        "tenant_id": "00000000-0000-0000-0000-000000000001",
        "client_id": "00000000-0000-0000-0000-000000000002",
        "client_secret": secret,
    }


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config_file(
    tmp_path: Path,
    feed_url: str,
    sinks: list[dict[str, Any]],
    name: str = "config.yaml",
    **top: Any,
) -> Path:
    """`write_config` to `tmp_path/name`, the feed authenticated with the bearer-token
    canary unless `top` sets `feed`."""
    top.setdefault("feed", {"auth": canaries.feed_bearer()})
    top.setdefault("drain_timeout", "2s")
    return write_config(tmp_path / name, feed_url, sinks, **top)


def cli(
    *arguments: str,
    log_format: str = "text",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 90.0,
) -> subprocess.CompletedProcess:
    """Run the CLI at DEBUG; fails if a canary appears in its stdout or stderr."""
    command = ("--log-level", "DEBUG", "--log-format", log_format, *arguments)
    completed = run_bridge(
        *command, timeout=timeout, cwd=cwd, env=None if env is None else os.environ | env
    )
    where = f"`dicom-bridge {' '.join(command)}`"
    canaries.assert_clean(completed.stdout, f"the stdout of {where}")
    canaries.assert_clean(completed.stderr, f"the stderr of {where}")
    return completed
