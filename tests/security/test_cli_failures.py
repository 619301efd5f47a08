"""No canary secret in the error messages the CLI prints when a peer refuses the bridge's
credentials, is unreachable, or a secret is configured wrongly; nor in its output when
the feed is read with Microsoft Entra ID tokens."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import read_events
from tests.peers.amqp_peer import AmqpPeer
from tests.security import canaries
from tests.security.entra import FakeEntra
from tests.security.scenario import canary_sinks, cli, closed_port, config_file, entra


@pytest.mark.parametrize(
    ("source", "status"), [("token", "401 Unauthorized"), ("token_file", "403 Forbidden")]
)
def test_a_feed_refusing_the_token_is_reported_without_it(tmp_path, simulator, source, status):
    if source == "token":  # the feed expects another one
        auth = canaries.feed_bearer()
        sim = simulator(entries=5, token="another-token")
    else:  # the token is right, its identity has no read permission
        token_file = tmp_path / "token"
        token_file.write_text(canaries.FEED_TOKEN_FILE.value + "\n")
        auth = {"type": "bearer", "token_file": str(token_file)}
        sim = simulator(entries=5, token=canaries.FEED_TOKEN_FILE.value, forbidden=True)
    config = str(config_file(tmp_path, sim.url, canary_sinks(tmp_path), feed={"auth": auth}))

    for log_format in ("text", "json"):
        ran = cli("run", "-c", config, "--exit-when-caught-up", log_format=log_format)
        assert ran.returncode == 1 and status in ran.stderr
    checked = cli("check", "-c", config)
    assert checked.returncode == 1 and f"FAIL feed: {status}" in checked.stdout
    shown = cli("offsets", "show", "-c", config)
    assert status in shown.stderr
    reset = cli("--debug", "offsets", "reset", "-c", config, "--sink", "archive", "--to-latest")
    assert reset.returncode == 1 and "Traceback" in reset.stderr and status in reset.stderr


def test_sinks_refusing_their_credentials_are_reported_without_them(
    tmp_path, simulator, receiver, kafka, new_topic, peer: AmqpPeer
):
    sim = simulator(entries=5, token=canaries.FEED_TOKEN.value)
    hooks = receiver([canaries.WEBHOOK_SECRET.value], bearer_token="another-token")  # 401
    basic = receiver([canaries.WEBHOOK_SECRET.value])
    basic.set_faults(gone=True)  # 410
    peer.set(cbs_status=401)  # Service Bus refuses the SAS token
    sinks = canary_sinks(
        tmp_path,
        webhook_url=hooks.url,
        basic_webhook_url=basic.url,
        kafka_bootstrap=kafka.bootstrap,  # SASL, which the mock cluster refuses
        kafka_properties={
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "debug": "security,conf",  # librdkafka's own account of it, logged at DEBUG
        },
        topic=new_topic(),
        amqp_address=peer.address,
    )
    config = str(config_file(tmp_path, sim.url, sinks))

    for log_format in ("text", "json"):
        ran = cli("run", "-c", config, "--exit-when-caught-up", log_format=log_format)
        assert ran.returncode == 1
        for stopped in ("hooks", "basic", "events", "queue"):
            assert f"sink {stopped} stopped" in ran.stderr
        assert "401 Unauthorized" in ran.stderr and "410 Gone" in ran.stderr
        assert "kafka: authentication failed" in ran.stderr
        assert f"on {peer.address}: authentication failed" in ran.stderr
    checked = cli("check", "-c", config)
    failed = {
        line.split(":")[0]: line for line in checked.stdout.splitlines() if line.startswith("FAIL")
    }
    assert set(failed) == {
        "FAIL sink hooks",
        "FAIL sink basic",
        "FAIL sink events",
        "FAIL sink queue",
    }
    # Regression: a SASL refusal was reported as "unreachable" (the metadata request fails
    # as a transport error; only librdkafka's error callback tells why).
    assert "kafka: authentication failed" in failed["FAIL sink events"]


def test_unreachable_peers_are_reported_without_secrets(tmp_path):
    nowhere = f"127.0.0.1:{closed_port()}"
    sinks = canary_sinks(
        tmp_path,
        webhook_url=f"http://{nowhere}/hooks",
        basic_webhook_url=f"https://{nowhere}/hooks",
        kafka_bootstrap=nowhere,
        topic="dicom.changes",
        amqp_address=nowhere,
    )
    config = str(config_file(tmp_path, f"http://{nowhere}", sinks))

    for log_format in ("text", "json"):
        checked = cli("check", "-c", config, log_format=log_format)
        failed = [line for line in checked.stdout.splitlines() if line.startswith("FAIL")]
        assert checked.returncode == 1 and len(failed) == 5, checked.stdout
        shown = cli("offsets", "show", "-c", config, "--json", log_format=log_format)
        assert '"latest_error": "cannot reach' in shown.stdout


def test_entra_client_secrets_and_tokens_stay_out_of_the_output(tmp_path, simulator, pki):
    sim = simulator(entries=5, token=canaries.ENTRA_ACCESS_TOKEN.value)
    accepted = {"auth": {"type": "azure", **entra(canaries.FEED_CLIENT_SECRET.value)}}
    config = str(config_file(tmp_path, sim.url, canary_sinks(tmp_path), feed=accepted))
    refused = {"auth": {"type": "azure", **entra(canaries.SERVICEBUS_CLIENT_SECRET.value)}}
    refused_config = str(
        config_file(tmp_path, sim.url, canary_sinks(tmp_path), "refused.yaml", feed=refused)
    )
    queue = {
        "name": "queue",
        "type": "servicebus",
        "fully_qualified_namespace": f"127.0.0.1:{closed_port()}",
        "queue": "dicom-changes",
        **entra(canaries.SERVICEBUS_CLIENT_SECRET.value),
    }
    sinks = [*canary_sinks(tmp_path), queue]
    check_config = str(config_file(tmp_path, sim.url, sinks, "check.yaml", feed=refused))

    with FakeEntra(
        pki,
        client_secret=canaries.FEED_CLIENT_SECRET.value,
        access_token=canaries.ENTRA_ACCESS_TOKEN.value,
    ) as authority:
        env = authority.environment()
        for log_format in ("text", "json"):
            ran = cli("run", "-c", config, "--exit-when-caught-up", log_format=log_format, env=env)
            assert ran.returncode == 0, ran.stderr
            ran = cli("run", "-c", refused_config, log_format=log_format, env=env)
            assert ran.returncode == 1 and "invalid_client" in ran.stderr
        checked = cli("check", "-c", check_config, env=env)
    assert authority.issued >= 2 and authority.refused >= 3
    events, _ = read_events(tmp_path / "events.jsonl")
    assert len(events) == 5
    failed = [line.split(":")[0] for line in checked.stdout.splitlines() if "FAIL" in line]
    assert failed == ["FAIL feed", "FAIL sink queue"]
