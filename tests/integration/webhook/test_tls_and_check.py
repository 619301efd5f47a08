"""TLS (verification on by default, a private CA, mutual TLS) and `check()` against real
receivers."""

from __future__ import annotations

import socket
import ssl

import pytest

from bridge.core.sink import DELIVERED, SinkError, Transient
from sinks import create_sink
from sinks.webhook.config import Config
from tests.integration.webhook.certs import make_pki
from tests.integration.webhook.helpers import SECRET, feed_events


def webhook_sink(url: str, **options):
    return create_sink(Config(name="hooks", type="webhook", url=url, secret=SECRET, **options))


async def deliver(url: str, **options) -> list:
    """The outcomes of sending two events."""
    sink = webhook_sink(url, **options)
    await sink.open()
    try:
        return await sink.send(feed_events(2))
    finally:
        await sink.close()


async def probe(url: str, **options) -> str | SinkError:
    """What `check()` says: its line, or the SinkError it raised."""
    try:
        return await webhook_sink(url, **options).check()
    except SinkError as exc:
        return exc


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_tls_is_verified_by_default_and_a_private_ca_can_be_trusted(receiver, pki):
    peer = receiver(ssl_certfile=str(pki.server_cert), ssl_keyfile=str(pki.server_key))
    assert peer.url.startswith("https://")

    outcomes = await deliver(peer.url)
    assert all(isinstance(outcome, Transient) for outcome in outcomes)
    assert "CERTIFICATE_VERIFY_FAILED" in outcomes[0].reason
    checked = await probe(peer.url)
    assert isinstance(checked, SinkError) and "CERTIFICATE_VERIFY_FAILED" in str(checked)
    assert peer.accepted() == []

    assert await deliver(peer.url, tls={"ca_file": pki.ca}) == [DELIVERED] * 2
    assert await deliver(peer.url, tls={"verify": False}) == [DELIVERED] * 2
    assert len(peer.accepted()) == 4


async def test_mutual_tls_presents_the_client_certificate(receiver, pki):
    peer = receiver(
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        ssl_ca_certs=str(pki.ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    tls = {"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key}
    assert await deliver(peer.url, tls=tls) == [DELIVERED] * 2
    checked = await probe(peer.url, tls=tls)
    assert checked == f"webhook {peer.url}: reachable (OPTIONS answered 204 No Content)"

    refused = await deliver(peer.url, tls={"ca_file": pki.ca})
    assert all(isinstance(outcome, Transient) for outcome in refused)
    assert len(peer.accepted()) == 2


async def test_check_reports_reachable_refused_gone_and_unreachable(receiver):
    peer = receiver(bearer_token="open-sesame")
    checked = await probe(peer.url, bearer_token="open-sesame")
    assert checked == f"webhook {peer.url}: reachable (OPTIONS answered 204 No Content)"

    refused = await probe(peer.url, bearer_token="wrong-token")
    assert isinstance(refused, SinkError)
    assert "401 Unauthorized" in str(refused) and "wrong-token" not in str(refused)

    peer.set_faults(gone=True)
    gone = await probe(peer.url + "?code=key123")
    assert isinstance(gone, SinkError) and "410 Gone: the endpoint is gone" in str(gone)
    assert "key123" not in str(gone)

    with socket.socket() as listener:  # a port nobody listens on
        listener.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
    unreachable = await probe(closed)
    assert isinstance(unreachable, SinkError) and "ConnectError" in str(unreachable)
