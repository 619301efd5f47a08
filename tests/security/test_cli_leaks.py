"""No canary secret in anything the CLI prints at DEBUG, in text or JSON logs: a healthy run
to every real peer, `check`, `offsets show`, `dlq show` and `replay`."""

from __future__ import annotations

import orjson
import pytest

from tests.e2e.helpers import read_events
from tests.peers.amqp_peer import AmqpPeer
from tests.peers.kafka_records import read_all
from tests.security import canaries
from tests.security.scenario import QUEUE, canary_sinks, cli, config_file, in_files

ENTRIES = 30
REJECTED = 7  # the webhook receiver refuses this sequence for good: a dead letter


@pytest.fixture
def everything(tmp_path, simulator, receiver, kafka, new_topic, peer: AmqpPeer):
    """Routes from a token-protected feed to a file, a webhook, Kafka and Service Bus, every
    secret a canary, and the peers, which accept them."""
    sim = simulator(entries=ENTRIES, seed=3, token=canaries.FEED_TOKEN.value)
    hooks = receiver([canaries.WEBHOOK_SECRET.value], bearer_token=canaries.WEBHOOK_BEARER.value)
    hooks.set_faults(reject={REJECTED: 400})
    basic = receiver([canaries.WEBHOOK_SECRET.value])
    topic = new_topic(partitions=3)
    sinks = canary_sinks(
        tmp_path / "out",
        webhook_url=hooks.url,
        basic_webhook_url=basic.url,
        kafka_bootstrap=kafka.bootstrap,
        topic=topic,
        amqp_address=peer.address,
    )
    return sinks, sim, hooks, basic, kafka, topic, peer


@pytest.mark.parametrize(("log_format", "secrets"), [("text", "inline"), ("json", "files")])
def test_a_run_to_every_peer_then_the_operator_commands_leak_nothing(
    everything, tmp_path, log_format, secrets
):
    sinks, sim, hooks, basic, kafka, topic, peer = everything
    auth = canaries.feed_bearer()
    if secrets == "files":  # each ending in a newline, as mounted secrets often do
        sinks = [in_files(sink, tmp_path / "secrets") for sink in sinks]
        auth = in_files(auth, tmp_path / "secrets")
    path = config_file(tmp_path, sim.url, sinks, feed={"auth": auth})
    config = str(path)

    checked = cli("check", "-c", config, log_format=log_format)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    probes = checked.stdout.splitlines()
    assert len(probes) == 12  # feed, offsets, 5 sinks, 5 dead-letter files
    assert all(probe.startswith("ok ") for probe in probes)

    ran = cli("run", "-c", config, "--exit-when-caught-up", log_format=log_format)
    assert ran.returncode == 0, ran.stderr
    # Each route really talked to its peer with the canaries configured.
    events, _ = read_events(path.parent / "out" / "events.jsonl")
    assert len(events) == ENTRIES
    assert len(hooks.accepted_sequences()) == ENTRIES - 1
    assert len(basic.accepted_sequences()) == ENTRIES
    assert len(read_all(kafka.bootstrap, topic)) == ENTRIES
    assert len(peer.messages(QUEUE)) == ENTRIES
    if log_format == "json":
        assert all(orjson.loads(line) for line in ran.stderr.splitlines())
    for written in (path.parent / "out").iterdir():  # events and dead letters
        canaries.assert_clean(written.read_bytes(), str(written))

    shown = cli("offsets", "show", "-c", config, log_format=log_format)
    assert shown.returncode == 0 and "hooks" in shown.stdout
    as_json = cli("offsets", "show", "-c", config, "--json", log_format=log_format)
    assert {row["sink"] for row in orjson.loads(as_json.stdout)["sinks"]} == {
        "archive",
        "hooks",
        "basic",
        "events",
        "queue",
    }

    dead = cli("dlq", "show", "-c", config, "--sink", "hooks", log_format=log_format)
    assert dead.returncode == 0 and "400" in dead.stdout
    dead_json = cli("dlq", "show", "-c", config, "--sink", "hooks", "--json")
    [record] = [orjson.loads(line) for line in dead_json.stdout.splitlines()]
    assert record["sequence"] == REJECTED

    replayed = cli("replay", "-c", config, "--sink", "hooks", "--from", "1", "--to", "10")
    assert replayed.returncode == 0, replayed.stderr
    assert "9 delivered" in replayed.stdout and "1 dead-lettered" in replayed.stdout


def test_regression_demo_names_a_webhook_route_without_its_keys(tmp_path, receiver):
    hooks = receiver([canaries.WEBHOOK_SECRET.value], bearer_token=canaries.WEBHOOK_BEARER.value)
    sinks = canary_sinks(tmp_path, webhook_url=hooks.url)
    config = config_file(tmp_path, "${DICOM_FEED_URL}", sinks, feed={})

    demo = cli("demo", "-c", str(config), "--port", "0", "--entries", "20", cwd=tmp_path)

    assert demo.returncode == 0, demo.stderr
    assert f"sink hooks (webhook): {hooks.url}\n" in demo.stdout
    assert len(hooks.accepted_sequences()) == 20
