"""How the sink reports what the peer refuses: fatal (credentials, missing entity), transient
with the route's backoff (throttling), transient with a long hint (a full entity); `check`
and the CLI's one-line reports, never showing the key. (Outages: the sink contract suite,
`tests/sinks`.)"""

from __future__ import annotations

import logging

import pytest

from bridge.core.sink import DELIVERED, SinkError, SinkFatalError, Transient
from sinks import create_sink
from sinks.servicebus.config import Config
from tests.e2e.helpers import run_bridge, write_config
from tests.factories import events
from tests.integration.servicebus.conftest import QUEUE, sink_config
from tests.peers.amqp_peer import KEY


def sink_for(peer, **options):
    return create_sink(Config.model_validate(sink_config(peer, **options)))


async def test_refused_credentials_stop_the_route_with_one_line_without_the_key(peer):
    peer.set(cbs_status=401)
    sink = sink_for(peer)
    try:
        with pytest.raises(SinkFatalError) as opened:
            await sink.open()
        with pytest.raises(SinkFatalError) as sent:
            await sink.send(events(2))
    finally:
        await sink.close()
    for error in (opened.value, sent.value):
        message = str(error)
        assert message.startswith(f"servicebus queue '{QUEUE}' on {peer.address}: ")
        assert "authentication failed" in message
        assert "\n" not in message and KEY not in message
    assert peer.stats()["queues"] == {}


async def test_a_missing_entity_is_fatal(peer):
    peer.set(entities=["another-queue"])
    sink = sink_for(peer)
    try:
        with pytest.raises(SinkFatalError, match="the entity does not exist"):
            await sink.open()
    finally:
        await sink.close()


async def test_throttling_is_transient_and_the_retry_delivers(peer):
    sink = sink_for(peer)
    await sink.open()
    try:
        peer.set(server_busy=True)
        busy = await sink.send(events(5))
        peer.set(server_busy=False)
        retried = await sink.send(events(5))
    finally:
        await sink.close()
    assert all(isinstance(outcome, Transient) for outcome in busy)
    assert busy[0].retry_after is None  # the route's backoff applies
    assert busy[0].reason.startswith("throttled by Service Bus: ServiceBusServerBusyError")
    assert retried == [DELIVERED] * 5
    assert peer.counters()["busy"] == 1  # one refused transfer, nothing stored from it
    assert len(peer.messages(QUEUE)) == 5


async def test_a_full_entity_waits_longer_and_says_so(peer):
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("sinks.servicebus.sink")
    logger.addHandler(handler)
    sink = sink_for(peer, quota_retry_after="90s")
    try:
        peer.set(reject_condition="amqp:resource-limit-exceeded")
        outcomes = await sink.send(events(3))
    finally:
        logger.removeHandler(handler)
        await sink.close()
    assert {outcome.retry_after for outcome in outcomes} == {90.0}
    assert "ServiceBusQuotaExceededError" in outcomes[0].reason
    [line] = lines
    assert f"servicebus queue '{QUEUE}'" in line and "is full or disabled" in line


async def test_check_reports_one_line(peer):
    line = await sink_for(peer).check()
    assert line == (
        f"servicebus queue '{QUEUE}' on {peer.address}: sender attached, the entity takes "
        "batches up to 262144 bytes"
    )
    peer.set(entities=[])
    with pytest.raises(SinkError, match="the entity does not exist"):
        await sink_for(peer).check()


def test_cli_check_and_run_name_the_problem(simulator, peer, tmp_path):
    sim = simulator(entries=10)
    config = write_config(tmp_path / "config.yaml", sim.url, [sink_config(peer)])
    checked = run_bridge("check", "-c", str(config))
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "sender attached" in checked.stdout + checked.stderr

    peer.set(cbs_status=401)
    checked = run_bridge("check", "-c", str(config))
    ran = run_bridge("run", "-c", str(config), "--exit-when-caught-up")
    for result in (checked, ran):
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "authentication failed" in output
        assert KEY not in output
    assert "Traceback" not in ran.stderr


async def test_messages_without_sessions_on_a_session_entity_are_fatal(peer):
    peer.set(requires_session=True)
    sink = sink_for(peer)
    try:
        with pytest.raises(SinkFatalError, match=r"needs `sessions: true`"):
            await sink.send(events(2))
    finally:
        await sink.close()
    sessions = sink_for(peer, sessions=True)
    try:
        assert await sessions.send(events(2)) == [DELIVERED] * 2
    finally:
        await sessions.close()
