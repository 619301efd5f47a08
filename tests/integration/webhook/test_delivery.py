"""Simulator -> bridge -> webhook receiver over real sockets: completeness, signatures,
per-study order, concurrency, every body format, key rotation, the CLI."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.e2e.helpers import run_bridge
from tests.integration.webhook.helpers import (
    OTHER_SECRET,
    SECRET,
    bridge_config,
    out_of_order,
    run,
    webhook,
)


async def test_every_sequence_arrives_signed_in_study_order_with_concurrency(
    simulator, receiver, tmp_path
):
    sim = simulator(entries=2_000, seed=61)
    peer = receiver()
    entries = sim.entries()
    started = time.monotonic()
    code, pipeline = await run(bridge_config(sim.url, tmp_path, webhook(peer.url)))
    elapsed = time.monotonic() - started
    [route] = pipeline.routes

    assert code == 0
    assert route.committed == entries[-1]["sequence"]
    requests = peer.snapshot()
    assert all(request.status == 204 for request in requests)  # all verified and parsed
    assert peer.accepted_sequences() == {entry["sequence"] for entry in entries}
    assert out_of_order(peer) == {}
    assert peer.max_in_flight > 1
    ids = [request.headers["webhook-id"] for request in requests]
    assert len(set(ids)) == len(entries)  # one request per event, no retries needed
    print(
        f"{len(entries)} entries in {elapsed:.2f}s ({len(entries) / elapsed:.0f}/s), "
        f"{len(requests)} requests, max {peer.max_in_flight} concurrent at the receiver"
    )


@pytest.mark.parametrize(
    ("options", "content_type"),
    [
        ({"format": "cloudevents-binary"}, "application/json"),
        ({"format": "raw"}, "application/json"),
        ({"batch": 25}, "application/cloudevents-batch+json; charset=utf-8"),
    ],
)
async def test_other_body_formats_arrive_complete_and_parse(
    simulator, receiver, tmp_path, options, content_type
):
    sim = simulator(entries=300, seed=62)
    peer = receiver()
    entries = {entry["sequence"]: entry for entry in sim.entries()}
    code, _ = await run(bridge_config(sim.url, tmp_path, webhook(peer.url, **options)))

    assert code == 0
    accepted = peer.accepted()
    assert len(accepted) == len(peer.snapshot())
    assert peer.accepted_sequences() == set(entries)
    assert out_of_order(peer) == {}
    assert {request.headers["content-type"] for request in accepted} == {content_type}
    events = [event for request in accepted for event in request.events]
    assert all(event.data == entries[event.sequence] for event in events)
    if options.get("format") == "raw":
        assert all(event.attributes is None for event in events)
    else:  # CloudEvents attributes survived the binding (ce-* headers or the JSON array)
        host = sim.url.split("//")[1]
        assert all(event.id == f"{host}/Microsoft.Default/{event.sequence}" for event in events)
        assert all(event.attributes["partitionkey"] == event.study for event in events)
    if "batch" in options:
        assert max(len(request.events) for request in accepted) == 25
        assert all(request.headers["webhook-id"].startswith("batch_") for request in accepted)


async def test_two_secrets_verify_at_receivers_holding_either_one(simulator, receiver, tmp_path):
    sim = simulator(entries=200, seed=63)
    holds_new, holds_old = receiver([SECRET]), receiver([OTHER_SECRET])
    holds_neither = receiver(["whsec_" + "QUJD" * 8])
    rotating = {"secret": [SECRET, OTHER_SECRET]}
    config = bridge_config(
        sim.url,
        tmp_path,
        webhook(holds_new.url, "new", **rotating),
        webhook(holds_old.url, "old", **rotating),
        webhook(holds_neither.url, "neither", **rotating),
    )
    code, pipeline = await run(config)

    everything = {entry["sequence"] for entry in sim.entries()}
    for peer in (holds_new, holds_old):
        assert peer.count(401) == 0
        assert peer.accepted_sequences() == everything
    assert all(
        len(request.headers["webhook-signature"].split(" ")) == 2
        for request in holds_new.snapshot()
    )
    # A receiver holding neither key refuses: 401 stops that route and only that one.
    new, old, neither = pipeline.routes
    assert code == 1 and new.running and old.running
    assert "401 Unauthorized" in neither.failure
    assert holds_neither.accepted() == [] and neither.committed == 0


def test_the_cli_delivers_with_a_secret_from_the_environment(
    simulator, receiver, tmp_path, monkeypatch
):
    sim = simulator(entries=100, seed=64)
    peer = receiver()
    config = tmp_path / "bridge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "feed": {"url": sim.url, "poll_interval": "50ms"},
                "offsets": {"path": str(tmp_path / "offsets.db")},
                "sinks": [webhook(peer.url, secret="${HOOK_SECRET}")],
            }
        )
    )
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    done = run_bridge("--log-level", "DEBUG", "run", "-c", str(config), "--exit-when-caught-up")
    assert done.returncode == 0, done.stderr
    assert peer.accepted_sequences() == {entry["sequence"] for entry in sim.entries()}
    assert SECRET.removeprefix("whsec_") not in done.stderr + done.stdout

    checked = run_bridge("check", "-c", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"webhook {peer.url}: reachable (OPTIONS answered 204 No Content)" in checked.stdout
