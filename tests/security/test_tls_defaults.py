"""TLS is verified by default by every client of the bridge: the feed's (in process and in
its HTTP helper process), the Kafka producer (certificate chain and host name, librdkafka's
defaults, which the sink does not override), the Service Bus client and the webhook
sink, and the Entra ID token requests. An endpoint whose certificate comes from a private
CA is refused (no handshake completes) until that CA is configured: `SSL_CERT_FILE` for
the feed and Entra ID, `ssl.ca.location` for Kafka, `tls.ca_file` for webhooks; Service
Bus trusts only its public CAs (certifi)."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import pytest

from bridge.config import FeedConfig
from bridge.core.sink import SinkError
from bridge.feed import FeedError
from bridge.runtime.wiring import feed_client
from sinks import create_sink
from sinks.kafka.config import PRODUCER_DEFAULTS
from sinks.kafka.config import Config as KafkaConfig
from sinks.servicebus.config import Config as ServiceBusConfig
from sinks.webhook.config import Config as WebhookConfig
from tests.security import canaries
from tests.security.entra import FakeEntra
from tests.security.scenario import canary_sinks, cli, config_file, entra
from tests.security.tls import TlsEndpoint

REFUSED = "certificate verify failed"


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


async def refusal(probe) -> str:
    """The one-line error `probe()` (a coroutine function) fails with."""
    with pytest.raises((FeedError, SinkError)) as failed:
        await probe()
    return str(failed.value)


@pytest.mark.parametrize("helper", [False, True], ids=["in-process", "helper-process"])
async def test_the_feed_client_verifies_the_certificate_unless_its_ca_is_trusted(
    pki, simulator, monkeypatch, helper
):
    sim = simulator(entries=5)
    with TlsEndpoint(pki, upstream=address(sim.url)) as endpoint:
        feed = FeedConfig(url=f"https://127.0.0.1:{endpoint.port}")

        async def probe():
            client = feed_client(feed, helper=helper)
            try:
                return await client.probe()
            finally:
                await client.close()

        assert REFUSED in (await refusal(probe)).lower()
        assert endpoint.handshakes == 0
        monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
        assert (await probe()).sequence == 5
        assert endpoint.handshakes == 1


async def test_the_kafka_producer_verifies_the_broker_certificate_and_name(pki):
    assert not any("ssl" in name for name in PRODUCER_DEFAULTS)  # librdkafka's own apply

    def sink(endpoint: TlsEndpoint, **producer: str):
        return create_sink(
            KafkaConfig(
                name="events",
                type="kafka",
                bootstrap_servers=f"{endpoint.host}:{endpoint.port}",
                topic="dicom.changes",
                producer={"security.protocol": "SSL", **canaries.kafka_producer(), **producer},
            )
        )

    trusted = {"ssl.ca.location": str(pki.ca)}
    with TlsEndpoint(pki) as endpoint, TlsEndpoint(pki, host="127.0.0.2") as misnamed:
        assert REFUSED in await refusal(sink(endpoint).check)
        assert REFUSED in await refusal(sink(misnamed, **trusted).check)
        assert endpoint.handshakes == misnamed.handshakes == 0
        # With the CA, the handshake completes (the endpoint speaks no Kafka after it).
        checking = asyncio.create_task(sink(endpoint, **trusted).check())
        try:
            await endpoint.wait_for_handshakes(1)
        finally:
            checking.cancel()
            with contextlib.suppress(asyncio.CancelledError, SinkError):
                await checking


async def test_the_service_bus_client_verifies_the_certificate(pki):
    try:
        endpoint = TlsEndpoint(pki, port=5671).start()  # amqps: the SDK ignores other ports
    except OSError as exc:
        pytest.skip(f"port 5671 is not available: {exc}")
    try:
        connection_string = canaries.servicebus_connection_string("127.0.0.1", emulator=False)
        sink = create_sink(
            ServiceBusConfig(
                name="queue", type="servicebus", queue="q", connection_string=connection_string
            )
        )
        assert REFUSED in (await refusal(sink.check)).lower()
        assert endpoint.handshakes == 0
    finally:
        endpoint.stop()


async def test_the_webhook_sink_verifies_the_certificate_unless_its_ca_is_given(pki, receiver):
    hooks = receiver([canaries.WEBHOOK_SECRET.value])
    with TlsEndpoint(pki, upstream=address(hooks.url)) as endpoint:
        url = f"https://127.0.0.1:{endpoint.port}/hooks/dicom"

        def sink(**options):
            return create_sink(WebhookConfig(name="hooks", type="webhook", url=url, **options))

        assert REFUSED in (await refusal(sink().check)).lower()
        assert endpoint.handshakes == 0
        assert "reachable" in await sink(tls={"ca_file": pki.ca}).check()
        assert endpoint.handshakes == 1


def test_entra_token_requests_verify_the_authority_certificate(tmp_path, pki):
    """In a process of its own: aiohttp reads SSL_CERT_FILE once, when first imported. The
    CLI test of the feed read with Entra tokens shows the CA accepted once configured."""
    feed = {"auth": {"type": "azure", **entra(canaries.FEED_CLIENT_SECRET.value)}}
    config = config_file(tmp_path, "https://127.0.0.1:9", canary_sinks(tmp_path), feed=feed)
    with FakeEntra(
        pki,
        client_secret=canaries.FEED_CLIENT_SECRET.value,
        access_token=canaries.ENTRA_ACCESS_TOKEN.value,
    ) as authority:
        checked = cli("check", "-c", str(config), env={"AZURE_AUTHORITY_HOST": authority.url})
    [feed_line] = [line for line in checked.stdout.splitlines() if "feed:" in line]
    assert feed_line.startswith("FAIL") and REFUSED in feed_line.lower()
    assert authority.issued == authority.refused == 0
