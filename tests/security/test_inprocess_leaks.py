"""No canary secret in what the running bridge serves (`/metrics`, `/readyz`, `/healthz`),
in the logs of a run whose peers refuse or cannot be reached (text and JSON, DEBUG), nor in
the reprs and strings of the config models, sinks, feed clients, auth providers and the
errors they raise."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bridge.config import BridgeConfig, parse_config
from bridge.core.sink import SinkError
from bridge.feed import FeedError
from bridge.runtime.pipeline import Pipeline
from bridge.runtime.wiring import auth_provider, feed_client
from sinks import create_sink
from tests.security import canaries
from tests.security.scenario import canary_sinks, closed_port, config_file, entra, in_files


def load(path) -> BridgeConfig:
    return parse_config(path.read_text())


async def until(condition, timeout: float = 60.0) -> None:
    async def poll() -> None:
        while not await condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_metrics_and_readiness_of_refused_and_unreachable_sinks_leak_nothing(
    tmp_path, simulator, receiver, captured_logs
):
    sim = simulator(entries=20, token=canaries.FEED_TOKEN.value)
    refusing = receiver([canaries.WEBHOOK_SECRET.value], bearer_token="another-token")
    nowhere = f"127.0.0.1:{closed_port()}"
    sinks = canary_sinks(
        tmp_path,
        webhook_url=refusing.url,  # 401: the route stops
        basic_webhook_url=f"http://{nowhere}/hooks",  # unreachable: retried
        kafka_bootstrap=nowhere,
        topic="dicom.changes",
        amqp_address=nowhere,
    )
    http_config = {"listen": "127.0.0.1:0", "unready_after": "0s"}  # every problem named at once
    config = load(config_file(tmp_path, sim.url, sinks, http=http_config))
    pipeline = Pipeline(config)
    running = asyncio.create_task(pipeline.run())
    answers: dict[str, str] = {}
    try:
        await until(lambda: _started(pipeline))
        base = f"http://127.0.0.1:{pipeline.listener.port}"
        async with httpx.AsyncClient(base_url=base) as http:

            async def every_sink_reported() -> bool:
                ready = (await http.get("/readyz")).json()
                answers["/readyz"] = str(ready)
                return {"sink hooks", "sink basic", "sink events", "sink queue"} <= set(
                    ready["problems"]
                ) and "stopped" in ready["problems"]["sink hooks"]

            await until(every_sink_reported)
            for path in ("/metrics", "/healthz", "/nowhere"):
                answers[path] = (await http.get(path)).text
    finally:
        pipeline.request_stop()
        await running
    assert "401 Unauthorized" in answers["/readyz"] and "dicom_bridge_up 1.0" in answers["/metrics"]
    for path, answer in answers.items():
        canaries.assert_clean(answer, path)
    logs = captured_logs.getvalue()
    assert "route stopped" in logs and "retrying" in logs
    canaries.assert_clean(logs, "the logs")


async def _started(pipeline: Pipeline) -> bool:
    return pipeline.listener is not None and pipeline.listener.started


def secret_configs(tmp_path, peer_address: str = "127.0.0.1:9") -> list[BridgeConfig]:
    """Configs holding every canary: the feed with each kind of credential, every sink."""
    token_file = tmp_path / "token"
    token_file.write_text(canaries.FEED_TOKEN_FILE.value)
    sinks = canary_sinks(
        tmp_path,
        webhook_url=f"http://{peer_address}/hooks",
        basic_webhook_url=f"https://{peer_address}/hooks",
        kafka_bootstrap=peer_address,
        topic="dicom.changes",
        amqp_address=peer_address,
    )
    sinks.append(
        {
            "name": "entra",
            "type": "servicebus",
            "topic": "dicom-changes",
            "fully_qualified_namespace": peer_address,
            **entra(canaries.SERVICEBUS_CLIENT_SECRET.value),
            "dead_letter": {"type": "webhook", **canaries.webhook_options("http://h/dl")},
        }
    )
    feeds: list[dict[str, Any]] = [
        {"type": "bearer", "token": canaries.FEED_TOKEN.value},
        {"type": "bearer", "token_file": str(token_file)},
        {"type": "azure", **entra(canaries.FEED_CLIENT_SECRET.value)},
    ]
    url = f"http://{peer_address}"
    configs = [
        load(config_file(tmp_path, url, sinks, f"{index}.yaml", feed={"auth": auth}))
        for index, auth in enumerate(feeds)
    ]
    files = tmp_path / "secrets"  # every secret read from a file ending in a newline
    from_files = [in_files(sink, files) for sink in sinks]
    auth = in_files(feeds[2], files)
    return [
        *configs,
        load(config_file(tmp_path, url, from_files, "files.yaml", feed={"auth": auth})),
    ]


async def test_reprs_and_strings_of_configs_sinks_clients_and_credentials_hide_secrets(tmp_path):
    shown: list[str] = []
    for config in secret_configs(tmp_path):
        objects: list[Any] = [config, config.feed, config.feed.auth, *config.sinks]
        objects += [sink.dead_letter for sink in config.sinks]
        client = feed_client(config.feed)
        objects += [client, client.auth, auth_provider(config.feed)]
        objects += [create_sink(sink) for sink in config.sinks]
        shown += [repr(item) + str(item) for item in objects]
        await client.close()
    for text in shown:
        canaries.assert_clean(text, f"repr {text[:60]}")


async def test_errors_raised_by_unreachable_peers_hide_secrets(tmp_path, captured_logs):
    [config, *_] = secret_configs(tmp_path, f"127.0.0.1:{closed_port()}")
    errors: list[BaseException] = []
    client = feed_client(config.feed)
    try:
        await client.probe()
    except FeedError as exc:
        errors.append(exc)
    finally:
        await client.close()
    peers = [sink for sink in config.sinks if sink.type != "file"]
    for sink_config in peers:
        sink = create_sink(sink_config)
        try:
            await asyncio.wait_for(sink.check(), 30)
        except (SinkError, TimeoutError) as exc:
            errors.append(exc)
        finally:
            await sink.close()
    assert len(errors) == 1 + len(peers)
    for error in errors:
        for text in (repr(error), str(error), repr(error.__cause__), repr(error.__context__)):
            canaries.assert_clean(text, f"the error {error!r}")
    canaries.assert_clean(captured_logs.getvalue(), "the logs")
